package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qmp"
)

// ErrDIMMNotReleased is wrapped when the guest did not release a DIMM
// qnuma memory asked it to give back within --wait.
var ErrDIMMNotReleased = errors.New("the guest did not release the DIMM")

// dimm is one DIMM qnuma memory plugged, as qemu lists it.
type dimm struct {
	N      int // its number in its guest node (plan.DIMMIDs)
	ID     string
	Memdev string // the backend's id
	Bytes  uint64
}

// dimmNumber is k when id is plan.DIMMIDs(g, k)'s device (dev) or
// backend (!dev), else 0.
func dimmNumber(id string, g int, dev bool) int {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return 0
	}
	k, err := strconv.Atoi(id[i+1:])
	if err != nil || k < 1 {
		return 0
	}
	if d, m := plan.DIMMIDs(g, k); (dev && d == id) || (!dev && m == id) {
		return k
	}
	return 0
}

// dimmsOf are guest node g's DIMMs among qemu's memory devices, by number.
func dimmsOf(devs []memoryDevice, g int) []dimm {
	var out []dimm
	for _, d := range devs {
		if d.Type != "dimm" {
			continue
		}
		if k := dimmNumber(d.Data.ID, g, true); k > 0 {
			out = append(out, dimm{N: k, ID: d.Data.ID, Memdev: strings.TrimPrefix(d.Data.Memdev, "/objects/"), Bytes: d.Data.Size})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].N < out[j].N })
	return out
}

// memdevInfo is one backend in query-memdev.
type memdevInfo struct {
	ID        string `json:"id"`
	Size      uint64 `json:"size"`
	Share     bool   `json:"share"`
	HostNodes []int  `json:"host-nodes"`
	Policy    string `json:"policy"`
}

// dimmBackend is what a new DIMM's backend is made of: the type and
// properties of its guest node's boot RAM (qnuma-ramG), bound to the
// guest node's host nodes.
type dimmBackend struct {
	qomType string
	props   map[string]any
}

// bootBackend reads guest node g's boot RAM backend from qemu, the model of
// its DIMMs' backends.
func bootBackend(ctx context.Context, mon *qmp.Client, e ledger.Entry, s memSlot, memdevs []memdevInfo) (dimmBackend, error) {
	id := fmt.Sprintf("qnuma-ram%d", s.GuestNode)
	op := fmt.Sprintf("vm %s: guest node %d's RAM backend %s", e.Name, s.GuestNode, id)
	var boot *memdevInfo
	for i := range memdevs {
		if memdevs[i].ID == id {
			boot = &memdevs[i]
		}
	}
	if boot == nil {
		return dimmBackend{}, fmt.Errorf("%s: qemu has no such backend, the model of the DIMMs' backends", op)
	}
	get := func(prop string, v any) error {
		var raw json.RawMessage
		if err := mon.Execute(ctx, "qom-get", map[string]any{"path": "/objects/" + id, "property": prop}, &raw); err != nil {
			return fmt.Errorf("%s: %s: %w", op, prop, err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("%s: %s: %w", op, prop, err)
		}
		return nil
	}
	var b dimmBackend
	if err := get("type", &b.qomType); err != nil {
		return b, err
	}
	policy := boot.Policy
	if policy == "" || policy == "default" {
		policy = string(memobj.PolicyBind)
	}
	b.props = map[string]any{"host-nodes": s.HostNodes, "policy": policy, "share": boot.Share}
	switch b.qomType {
	case "memory-backend-ram":
	case "memory-backend-memfd":
		var huge bool
		if err := get("hugetlb", &huge); err != nil {
			return b, err
		}
		if huge {
			var size uint64
			if err := get("hugetlbsize", &size); err != nil {
				return b, err
			}
			b.props["hugetlb"], b.props["hugetlbsize"] = true, size
		}
	case "memory-backend-file":
		var path string
		if err := get("mem-path", &path); err != nil {
			return b, err
		}
		b.props["mem-path"] = path
	default:
		return b, fmt.Errorf("%s: is a %s, which qnuma memory makes no DIMM backend like", op, b.qomType)
	}
	return b, nil
}

// dropOrphans removes guest node g's DIMM backends whose DIMM is gone (the
// guest released it after a qnuma memory gave up waiting): their memory
// is the host's again.
func dropOrphans(ctx context.Context, mon *qmp.Client, e ledger.Entry, g int, memdevs []memdevInfo, dimms []dimm) error {
	used := map[string]bool{}
	for _, d := range dimms {
		used[d.Memdev] = true
	}
	for _, m := range memdevs {
		if dimmNumber(m.ID, g, false) > 0 && !used[m.ID] {
			if err := mon.Execute(ctx, "object-del", map[string]any{"id": m.ID}, nil); err != nil {
				return fmt.Errorf("vm %s: remove the backend %s of a DIMM the guest released: %w", e.Name, m.ID, err)
			}
		}
	}
	return nil
}

// resizeDIMMs brings guest node s's DIMMs from what qemu has to target
// bytes: new DIMMs (numbered on from the last) each with its backend
// (model: b), or the last ones removed first, each waited for up to wait
// (the guest must release it) and then its backend. onChange is told the
// bytes plugged after each step.
func resizeDIMMs(ctx context.Context, mon *qmp.Client, e ledger.Entry, s memSlot, have []dimm, target uint64, b dimmBackend, wait time.Duration, onChange func(uint64) error) error {
	plugged := uint64(0)
	next := 1
	for _, d := range have {
		plugged += d.Bytes
		next = max(next, d.N+1)
	}
	for ; plugged < target; next++ {
		dev, memdev := plan.DIMMIDs(s.GuestNode, next)
		op := fmt.Sprintf("vm %s: add DIMM %s of %s to guest node %d", e.Name, dev, memobj.FormatSize(s.DIMMBytes), s.GuestNode)
		args := map[string]any{"qom-type": b.qomType, "id": memdev, "size": s.DIMMBytes}
		for k, v := range b.props {
			args[k] = v
		}
		if err := mon.Execute(ctx, "object-add", args, nil); err != nil {
			return fmt.Errorf("%s: its backend: %w", op, err)
		}
		if err := mon.Execute(ctx, "device_add", map[string]any{"driver": "pc-dimm", "id": dev, "memdev": memdev, "node": s.GuestNode}, nil); err != nil {
			if derr := mon.Execute(ctx, "object-del", map[string]any{"id": memdev}, nil); derr != nil {
				err = fmt.Errorf("%w; removing its backend %s failed too: %v", err, memdev, derr)
			}
			return fmt.Errorf("%s: %w", op, err)
		}
		plugged += s.DIMMBytes
		if err := onChange(plugged); err != nil {
			return err
		}
	}
	for i := len(have) - 1; i >= 0 && plugged > target; i-- {
		d := have[i]
		if err := unplugDIMM(ctx, mon, e, s, d, wait); err != nil {
			return err
		}
		plugged -= d.Bytes
		if err := onChange(plugged); err != nil {
			return err
		}
	}
	return nil
}

// unplugDIMM asks the guest to release d, waits up to wait for qemu's
// DEVICE_DELETED, then removes its backend.
func unplugDIMM(ctx context.Context, mon *qmp.Client, e ledger.Entry, s memSlot, d dimm, wait time.Duration) error {
	op := fmt.Sprintf("vm %s: remove DIMM %s (%s) from guest node %d", e.Name, d.ID, memobj.FormatSize(d.Bytes), s.GuestNode)
	if err := mon.Execute(ctx, "device_del", map[string]any{"id": d.ID}, nil); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
wait:
	for {
		select {
		case ev, ok := <-mon.Events():
			if !ok {
				return fmt.Errorf("%s: %w", op, mon.Err())
			}
			var dd struct {
				Device string `json:"device"`
			}
			if ev.Name == "DEVICE_DELETED" && json.Unmarshal(ev.Data, &dd) == nil && dd.Device == d.ID {
				break wait
			}
		case <-wctx.Done():
			return fmt.Errorf("%s: %w within %s (--wait): a DIMM is removed only by a running guest OS with ACPI memory hot-remove whose memory there can go offline (onlined movable); a VM without one never releases it. qemu keeps the request (the DIMM goes if the guest releases it later, and the next qnuma memory frees its backend); nothing else was removed",
				op, ErrDIMMNotReleased, wait)
		}
	}
	if err := mon.Execute(ctx, "object-del", map[string]any{"id": d.Memdev}, nil); err != nil {
		return fmt.Errorf("%s: the guest released it, but removing its backend %s failed: %w", op, d.Memdev, err)
	}
	return nil
}

// vmRunning refuses (bad input) to wait for a guest that cannot answer: a
// paused VM releases no DIMM.
func vmRunning(ctx context.Context, mon *qmp.Client, e ledger.Entry) error {
	var st struct {
		Running bool   `json:"running"`
		Status  string `json:"status"`
	}
	if err := mon.Execute(ctx, "query-status", nil, &st); err != nil {
		return fmt.Errorf("vm %s: %w", e.Name, err)
	}
	if !st.Running {
		return badInput("vm %s is %s, not running: a DIMM is removed only by the running guest, which releases it (ACPI); nothing changed", e.Name, st.Status)
	}
	return nil
}

// prepareDIMMs is what a change of DIMM slots needs before anything is
// asked: the backends of DIMMs the guest released meanwhile removed, each
// growing slot's backend model read (by slot index), and a shrink refused
// when the VM is not running or wait is 0 (a DIMM's backend goes only once
// the guest has released it).
func prepareDIMMs(ctx context.Context, mon *qmp.Client, e ledger.Entry, slots []memSlot, target []uint64, wait time.Duration) ([]dimmBackend, error) {
	out := make([]dimmBackend, len(slots))
	var memdevs []memdevInfo
	asked := false
	for i, s := range slots {
		if s.DIMMBytes == 0 {
			continue
		}
		if !asked {
			if err := mon.Execute(ctx, "query-memdev", nil, &memdevs); err != nil {
				return nil, fmt.Errorf("vm %s: %w", e.Name, err)
			}
			asked = true
		}
		if err := dropOrphans(ctx, mon, e, s.GuestNode, memdevs, s.DIMMs); err != nil {
			return nil, err
		}
		switch {
		case target[i] > s.Plugged:
			b, err := bootBackend(ctx, mon, e, s, memdevs)
			if err != nil {
				return nil, err
			}
			out[i] = b
		case target[i] < s.Plugged:
			if wait <= 0 {
				return nil, badInput("vm %s: --wait %s: removing a DIMM waits for the guest to release it: give --wait DURATION; nothing changed", e.Name, wait)
			}
			if err := vmRunning(ctx, mon, e); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
