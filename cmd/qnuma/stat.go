package main

import "errors"

// StatCmd is `qnuma stat` (being written).
type StatCmd struct{}

func (c *StatCmd) Run() error { return errors.New("qnuma stat: not yet") }
