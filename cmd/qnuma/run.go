package main

import "errors"

// RunCmd is `qnuma run` (being written).
type RunCmd struct{}

func (c *RunCmd) Run() error { return errors.New("qnuma run: not yet") }
