package main

import "fmt"

// isNumactlSyntax reports whether args use numactl's options (qnuma --membind=1 -- CMD).
func isNumactlSyntax(args []string) bool { return false }

func runNumactl(args []string) int { fmt.Println("not yet"); return 2 }
