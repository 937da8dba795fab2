package main

import "errors"

// DoctorCmd is `qnuma doctor` (being written).
type DoctorCmd struct{}

func (c *DoctorCmd) Run() error { return errors.New("qnuma doctor: not yet") }
