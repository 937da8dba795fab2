package qmp

import (
	"context"
	"errors"
	"fmt"
)

// CPU is one entry of query-cpus-fast.
type CPU struct {
	CPUIndex int `json:"cpu-index"`
	// ThreadID is the OS thread (TID) running this vCPU. Under single-threaded
	// TCG every vCPU reports the same one.
	ThreadID int      `json:"thread-id"`
	QOMPath  string   `json:"qom-path"`
	Target   string   `json:"target"`
	Props    CPUProps `json:"props"`
}

// CPUProps locates a vCPU in the guest topology; nil fields were not given
// by the machine type.
type CPUProps struct {
	NodeID    *int `json:"node-id"`
	SocketID  *int `json:"socket-id"`
	DieID     *int `json:"die-id"`
	ClusterID *int `json:"cluster-id"`
	CoreID    *int `json:"core-id"`
	// ThreadID is the SMT thread index within the core, not an OS thread.
	ThreadID *int `json:"thread-id"`
}

// QueryCPUsFast lists the vCPUs with the OS threads that run them.
func (c *Client) QueryCPUsFast(ctx context.Context) ([]CPU, error) {
	var cpus []CPU
	if err := c.Execute(ctx, "query-cpus-fast", nil, &cpus); err != nil {
		return nil, err
	}
	for _, cpu := range cpus {
		// A missing thread-id decodes as 0; pinning tid 0 would pin the caller.
		if cpu.ThreadID <= 0 {
			return nil, fmt.Errorf("qmp query-cpus-fast (%s): cpu %d has no thread-id", c.path, cpu.CPUIndex)
		}
	}
	return cpus, nil
}

// IOThread is one entry of query-iothreads.
type IOThread struct {
	ID       string `json:"id"`
	ThreadID int    `json:"thread-id"`
}

// QueryIOThreads lists the I/O threads (-object iothread) with their OS
// threads.
func (c *Client) QueryIOThreads(ctx context.Context) ([]IOThread, error) {
	var threads []IOThread
	if err := c.Execute(ctx, "query-iothreads", nil, &threads); err != nil {
		return nil, err
	}
	for _, t := range threads {
		if t.ThreadID <= 0 {
			return nil, fmt.Errorf("qmp query-iothreads (%s): iothread %q has no thread-id", c.path, t.ID)
		}
	}
	return threads, nil
}

// Memdev is one memory backend as query-memdev reports it.
type Memdev struct {
	ID        string `json:"id"`
	Size      uint64 `json:"size"`
	Merge     bool   `json:"merge"`
	Dump      bool   `json:"dump"`
	Prealloc  bool   `json:"prealloc"`
	Share     bool   `json:"share"`
	HostNodes []int  `json:"host-nodes"`
	// Policy is QEMU's HostMemPolicy: default, preferred, bind or interleave.
	Policy string `json:"policy"`
}

// QueryMemdev lists the memory backends with their size and NUMA policy.
func (c *Client) QueryMemdev(ctx context.Context) ([]Memdev, error) {
	var devs []Memdev
	if err := c.Execute(ctx, "query-memdev", nil, &devs); err != nil {
		return nil, err
	}
	return devs, nil
}

// Status is query-status's answer. Status is QEMU's RunState ("prelaunch"
// for a VM started with -S, "paused", "running", ...).
type Status struct {
	Running    bool   `json:"running"`
	Singlestep bool   `json:"singlestep"`
	Status     string `json:"status"`
}

// QueryStatus reports whether the guest runs.
func (c *Client) QueryStatus(ctx context.Context) (Status, error) {
	var s Status
	if err := c.Execute(ctx, "query-status", nil, &s); err != nil {
		return Status{}, err
	}
	return s, nil
}

// Cont starts or resumes the guest's vCPUs.
func (c *Client) Cont(ctx context.Context) error {
	return c.Execute(ctx, "cont", nil, nil)
}

// SystemPowerdown asks the guest to power off (an ACPI power button press);
// the guest may ignore it.
func (c *Client) SystemPowerdown(ctx context.Context) error {
	return c.Execute(ctx, "system_powerdown", nil, nil)
}

// Quit makes QEMU exit. QEMU may close the socket before its reply arrives,
// so a connection that closes once quit was sent counts as success.
func (c *Client) Quit(ctx context.Context) error {
	_, sent, err := c.call(ctx, "quit", nil)
	if err != nil && sent && errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}
