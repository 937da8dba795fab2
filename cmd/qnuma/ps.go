package main

import "errors"

// PsCmd is `qnuma ps` (being written).
type PsCmd struct{}

func (c *PsCmd) Run() error { return errors.New("qnuma ps: not yet") }
