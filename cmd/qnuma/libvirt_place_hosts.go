package main

// qnuma libvirt place --connect A --connect B DOMAIN: the domain planned
// on every host given where it exists, ranked as qnuma plan --connect
// ranks them (plan_hosts.go), and placed on the best.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/plan"
)

// placeBest is place with several --connect.
func (c *LibvirtPlaceCmd) placeBest(ctx context.Context, w io.Writer) error {
	var hs []*hostPlan
	on := map[*hostPlan]*placeOn{}
	for i, uri := range c.Connect {
		if slices.Contains(c.Connect[:i], uri) {
			return badInput("--connect %s is given twice", uri)
		}
		if err := c.checkFlags(libvirthost.IsLocal(uri)); err != nil {
			return err
		}
	}
	for _, uri := range c.Connect {
		h := &hostPlan{uri: uri}
		hs = append(hs, h)
		conn, err := c.dialURI(uri)
		if IsUsage(err) {
			return err
		}
		if err != nil {
			h.down = err
			continue
		}
		defer conn.Close()
		po, err := c.planOn(ctx, conn, uri)
		switch {
		case errors.Is(err, libvirthost.ErrNoDomain):
			h.noFit, h.refusal = err, "not there"
		case errors.Is(err, plan.ErrDoesNotFit):
			h.noFit = err
		case IsUsage(err):
			h.noFit, h.refusal = err, "cannot place it there" // not running for --live, transient for --config, a change libvirt would refuse
		case err != nil:
			h.down = err
		default:
			h.pr, h.q = po.pr, qualityOf(po.pr.Plan)
			on[h] = po
		}
	}
	rankHosts(hs)
	best := on[hs[0]]
	if best == nil {
		if c.JSON {
			if err := encodeJSON(w, hostsJSONOf(hs)); err != nil {
				return err
			}
		} else if err := hostsText(w, hs); err != nil {
			return err
		}
		return badInput("domain %q: no host given can take it (why for each above); nothing changed", c.Domain)
	}
	if c.JSON {
		c.hosts = hostsJSONOf(hs).Hosts
		return c.applyOn(w, best)
	}
	if err := hostsText(w, hs); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "\nPlaced on %s:\n\n", best.uri); err != nil {
		return err
	}
	return c.applyOn(w, best)
}

func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
