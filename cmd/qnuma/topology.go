package main

import "errors"

// TopologyCmd is `qnuma topology` (being written).
type TopologyCmd struct{}

func (c *TopologyCmd) Run() error { return errors.New("qnuma topology: not yet") }
