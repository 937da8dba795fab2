package qemucmd

import (
	"strings"
)

// Chardev is -chardev BACKEND,id=ID,...: for sockets, where they are and
// whether QEMU listens (server) and waits for a client before it starts
// (wait, QEMU's default when server is on).
type Chardev struct {
	Backend, ID  string
	Path         string
	Server, Wait *bool
	Other        []Prop
}

func parseChardev(v string) (Option, error) {
	p, err := ParseProps(v, "backend", false)
	if err != nil {
		return nil, err
	}
	r := newReader(p)
	var c Chardev
	if c.Backend, err = r.str("backend"); err != nil {
		return nil, err
	}
	if c.ID, err = r.str("id"); err != nil {
		return nil, err
	}
	if c.Path, err = r.str("path"); err != nil {
		return nil, err
	}
	if c.Server, err = r.boolean("server"); err != nil {
		return nil, err
	}
	if c.Wait, err = r.boolean("wait"); err != nil {
		return nil, err
	}
	c.Other = r.rest()
	return c, nil
}

func (c Chardev) Arg() Arg {
	w := newWriter(false, "backend")
	w.str("backend", c.Backend)
	w.str("id", c.ID)
	w.str("path", c.Path)
	w.boolean("server", c.Server)
	w.boolean("wait", c.Wait)
	w.extra(c.Other)
	return newArg("chardev", w.String(), c)
}

// Waits says QEMU waits, before it starts the guest or answers anything, for
// a client to connect to this socket.
func (c Chardev) Waits() bool {
	return c.Backend == "socket" && waits(c.Server, c.Wait)
}

func waits(server, wait *bool) bool {
	return server != nil && *server && (wait == nil || *wait)
}

// Mon is -mon [chardev=]ID,mode=readline|control: a monitor on a chardev;
// mode control is QMP.
type Mon struct {
	Chardev, ID, Mode string
	Pretty            *bool
}

func parseMon(v string) (Option, error) {
	p, err := ParseProps(v, "chardev", false)
	if err != nil {
		return nil, err
	}
	r := newReader(p)
	var m Mon
	if m.Chardev, err = r.str("chardev"); err != nil {
		return nil, err
	}
	if m.ID, err = r.str("id"); err != nil {
		return nil, err
	}
	if m.Mode, err = r.str("mode"); err != nil {
		return nil, err
	}
	if m.Pretty, err = r.boolean("pretty"); err != nil {
		return nil, err
	}
	if err := r.strict("chardev, id, mode, pretty"); err != nil {
		return nil, err
	}
	return m, nil
}

func (m Mon) Arg() Arg {
	w := newWriter(false, "chardev")
	w.str("chardev", m.Chardev)
	w.str("id", m.ID)
	w.str("mode", m.Mode)
	w.boolean("pretty", m.Pretty)
	return newArg("mon", w.String(), m)
}

// CharSpec is the short chardev form of -qmp, -qmp-pretty, -monitor,
// -serial, -parallel and -debugcon: "unix:PATH,server=on,wait=off",
// "tcp:HOST:PORT,server", "stdio", "chardev:ID".
type CharSpec struct {
	// Option is the option it was given to ("qmp", "monitor", ...).
	Option string
	// Kind is the part before the first ':' ("unix", "tcp", "stdio");
	// Target the rest up to the first ',' (a path, HOST:PORT, an id).
	Kind, Target string
	HasTarget    bool
	Server, Wait *bool
	Other        []Prop
}

func parseCharSpec(option, v string) (Option, error) {
	head, rest, hasRest := strings.Cut(v, ",")
	s := CharSpec{Option: option}
	s.Kind, s.Target, s.HasTarget = strings.Cut(head, ":")
	if hasRest {
		p, err := ParseProps(rest, "", false)
		if err != nil {
			return nil, err
		}
		r := newReader(p)
		if s.Server, err = r.boolean("server"); err != nil {
			return nil, err
		}
		if s.Wait, err = r.boolean("wait"); err != nil {
			return nil, err
		}
		s.Other = r.rest()
	}
	return s, nil
}

func (s CharSpec) Arg() Arg {
	v := s.Kind
	if s.HasTarget {
		v += ":" + s.Target
	}
	w := newWriter(false, "")
	w.boolean("server", s.Server)
	w.boolean("wait", s.Wait)
	w.extra(s.Other)
	if len(w.p.Items) > 0 {
		v += "," + w.String()
	}
	return newArg(s.Option, v, s)
}

// Waits says QEMU waits for a client on this socket before it starts.
func (s CharSpec) Waits() bool {
	switch s.Kind {
	case "unix", "tcp", "telnet", "websocket":
		return waits(s.Server, s.Wait)
	}
	return false
}

// IsQMP says the option is a QMP monitor: -qmp, -qmp-pretty, or -mon in
// control mode.
func IsQMP(a Arg) bool {
	switch o := a.Opt.(type) {
	case CharSpec:
		return o.Option == "qmp" || o.Option == "qmp-pretty"
	case Mon:
		return o.Mode == "control"
	}
	return a.Name == "qmp" || a.Name == "qmp-pretty"
}

// WaitingSockets lists, as written, the options whose server sockets make
// QEMU wait for a client before it starts (server=on without wait=off):
// QEMU answers nothing, QMP included, until someone connects.
func (c *Cmdline) WaitingSockets() []string {
	var out []string
	for _, a := range c.Args {
		w, ok := a.Opt.(interface{ Waits() bool })
		if ok && w.Waits() {
			out = append(out, a.Flag+" "+a.Value)
		}
	}
	return out
}
