package main

import "errors"

// PlanCmd is `qnuma plan` (being written).
type PlanCmd struct{}

func (c *PlanCmd) Run() error { return errors.New("qnuma plan: not yet") }
