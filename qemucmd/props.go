package qemucmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/memobj"
)

// Prop is one property of an option's value, in the order written.
type Prop struct {
	Key string
	// Value is the text of a key=value item (",," already a comma), or
	// the raw JSON of a JSON member ("1073741824", "true", "[0,1]", "\"m0\"").
	Value string
}

// Props is an option's value split into properties: QEMU's key=value list
// or, for -object and -device, a JSON object.
type Props struct {
	JSON  bool
	Items []Prop
}

// maxProps bounds the items of one option's value; QEMU's own options
// have a few dozen at most.
const maxProps = 4096

// ParseProps splits a value. A value starting with '{' is JSON where json
// is set. In the key=value form ",," is a literal comma; a first item
// without "=" is the value of implied (when implied is not ""); a later
// item without "=" is a flag: "server" is server=on and "nowait" wait=off,
// as QEMU reads them.
func ParseProps(s, implied string, json bool) (Props, error) {
	if json && strings.HasPrefix(strings.TrimSpace(s), "{") {
		return parseJSONProps(s)
	}
	return splitKV(s, implied, true)
}

// splitKV splits the key=value form (a trailing comma ends it, as QEMU
// reads it); without flags, an item without "="
// after the first is an error (QEMU's -smp, -m and -numa have no flags).
func splitKV(s, implied string, flags bool) (Props, error) {
	var items []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == ',' {
			if i+1 < len(s) && s[i+1] == ',' {
				cur.WriteByte(',')
				i++
				continue
			}
			items = append(items, cur.String())
			cur.Reset()
			if len(items) > maxProps {
				return Props{}, fmt.Errorf("more than %d items", maxProps)
			}
			continue
		}
		cur.WriteByte(s[i])
	}
	// QEMU takes a trailing comma ("4,"): no item follows it.
	if cur.Len() > 0 || len(items) == 0 {
		items = append(items, cur.String())
	}
	p := Props{Items: make([]Prop, 0, len(items))}
	for i, it := range items {
		k, v, ok := strings.Cut(it, "=")
		switch {
		case ok && k == "":
			return Props{}, fmt.Errorf("item %q has no key", it)
		case ok:
			p.Items = append(p.Items, Prop{Key: k, Value: v})
		case i == 0 && implied != "":
			p.Items = append(p.Items, Prop{Key: implied, Value: it})
		case !flags || it == "":
			return Props{}, fmt.Errorf("item %q is not key=value", it)
		case strings.HasPrefix(it, "no") && len(it) > 2:
			p.Items = append(p.Items, Prop{Key: it[2:], Value: "off"})
		default:
			p.Items = append(p.Items, Prop{Key: it, Value: "on"})
		}
	}
	return p, nil
}

func parseJSONProps(s string) (Props, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return Props{}, fmt.Errorf("json: want an object")
	}
	p := Props{JSON: true}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return Props{}, fmt.Errorf("json: %w", err)
		}
		k, ok := t.(string)
		if !ok {
			return Props{}, fmt.Errorf("json: key %v is not a string", t)
		}
		if seen[k] {
			return Props{}, fmt.Errorf("json: duplicate key %q", k)
		}
		seen[k] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Props{}, fmt.Errorf("json: %q: %w", k, err)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, raw); err != nil {
			return Props{}, fmt.Errorf("json: %q: %w", k, err)
		}
		p.Items = append(p.Items, Prop{Key: k, Value: c.String()})
		if len(p.Items) > maxProps {
			return Props{}, fmt.Errorf("json: more than %d members", maxProps)
		}
	}
	if _, err := dec.Token(); err != nil {
		return Props{}, fmt.Errorf("json: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Props{}, fmt.Errorf("json: text after the object")
	}
	return p, nil
}

// String renders the props in their own form.
func (p Props) String() string {
	if p.JSON {
		var b strings.Builder
		b.WriteByte('{')
		for i, it := range p.Items {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(it.Key)
			b.Write(k)
			b.WriteByte(':')
			b.WriteString(it.Value)
		}
		b.WriteByte('}')
		return b.String()
	}
	parts := make([]string, len(p.Items))
	for i, it := range p.Items {
		parts[i] = escape(it.Key) + "=" + escape(it.Value)
	}
	return strings.Join(parts, ",")
}

// Get returns the last value of key (QEMU: a later key wins).
func (p Props) Get(key string) (string, bool) {
	for i := len(p.Items) - 1; i >= 0; i-- {
		if p.Items[i].Key == key {
			return p.Items[i].Value, true
		}
	}
	return "", false
}

func escape(v string) string { return strings.ReplaceAll(v, ",", ",,") }

// reader reads typed values from Props, in either form, and remembers the
// keys it read so that the rest can be kept or refused.
type reader struct {
	p    Props
	used map[string]bool
}

func newReader(p Props) *reader { return &reader{p: p, used: map[string]bool{}} }

// raw returns key's last value as text: a JSON string unquoted, other JSON
// as written.
func (r *reader) raw(key string) (string, bool, error) {
	r.used[key] = true
	v, ok := r.p.Get(key)
	if !ok || !r.p.JSON {
		return v, ok, nil
	}
	if strings.HasPrefix(v, `"`) {
		var s string
		if err := json.Unmarshal([]byte(v), &s); err != nil {
			return "", false, fmt.Errorf("%s: %w", key, err)
		}
		return s, true, nil
	}
	return v, true, nil
}

func (r *reader) str(key string) (string, error) {
	v, ok, err := r.raw(key)
	if err != nil || !ok {
		return "", err
	}
	if r.p.JSON && !isJSONString(r.p, key) {
		return "", fmt.Errorf("%s=%s: want a string", key, v)
	}
	return v, nil
}

func isJSONString(p Props, key string) bool {
	v, _ := p.Get(key)
	return strings.HasPrefix(v, `"`)
}

// boolean reads QEMU's on/off, yes/no, true/false (JSON: true/false).
func (r *reader) boolean(key string) (*bool, error) {
	v, ok, err := r.raw(key)
	if err != nil || !ok {
		return nil, err
	}
	b, err := parseBool(v)
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", key, v, err)
	}
	return &b, nil
}

func parseBool(v string) (bool, error) {
	switch v {
	case "on", "yes", "true", "y":
		return true, nil
	case "off", "no", "false", "n":
		return false, nil
	}
	return false, fmt.Errorf("want on or off")
}

// count reads a non-negative integer.
func (r *reader) count(key string) (*int, error) {
	v, ok, err := r.raw(key)
	if err != nil || !ok {
		return nil, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%s=%q is not a count", key, v)
	}
	return &n, nil
}

// id reads a node, socket, core or thread id, bounded as cpulist bounds them.
func (r *reader) id(key string) (*int, error) {
	v, ok, err := r.raw(key)
	if err != nil || !ok {
		return nil, err
	}
	n, err := cpulist.ParseID(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return &n, nil
}

// size reads a size in bytes unless suffixed (JSON: a number of bytes, or
// a string as in the key=value form).
func (r *reader) size(key string, unit uint64) (uint64, bool, error) {
	v, ok, err := r.raw(key)
	if err != nil || !ok {
		return 0, false, err
	}
	n, err := memobj.ParseSize(v, unit)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", key, err)
	}
	return n, true, nil
}

// list reads a node or CPU list: repeated keys in the key=value form
// (host-nodes=0-1,host-nodes=4), each a cpulist; a JSON array of ids.
func (r *reader) list(key string) (cpuset.CPUSet, bool, error) {
	r.used[key] = true
	var ids []int
	found := false
	for _, it := range r.p.Items {
		if it.Key != key {
			continue
		}
		found = true
		if r.p.JSON {
			var nums []json.Number
			if err := json.Unmarshal([]byte(it.Value), &nums); err != nil {
				return cpuset.CPUSet{}, false, fmt.Errorf("%s=%s: want an array of ids", key, it.Value)
			}
			for _, id := range nums {
				n, err := cpulist.ParseID(id.String())
				if err != nil {
					return cpuset.CPUSet{}, false, fmt.Errorf("%s: %w", key, err)
				}
				ids = append(ids, n)
			}
		} else {
			s, err := cpulist.Parse(it.Value)
			if err != nil {
				return cpuset.CPUSet{}, false, fmt.Errorf("%s: %w", key, err)
			}
			if s.Size() == 0 {
				return cpuset.CPUSet{}, false, fmt.Errorf("%s is empty", key)
			}
			ids = append(ids, s.List()...)
		}
		if len(ids) > cpulist.MaxID {
			return cpuset.CPUSet{}, false, fmt.Errorf("%s: more than %d ids", key, cpulist.MaxID)
		}
	}
	if !found {
		return cpuset.CPUSet{}, false, nil
	}
	return cpuset.New(ids...), true, nil
}

// rest returns the props not read, in order.
func (r *reader) rest() []Prop {
	var out []Prop
	for _, it := range r.p.Items {
		if !r.used[it.Key] {
			out = append(out, it)
		}
	}
	return out
}

// strict refuses props not read, naming the keys wanted.
func (r *reader) strict(want string) error {
	if rest := r.rest(); len(rest) > 0 {
		return fmt.Errorf("unknown key %q (want %s)", rest[0].Key, want)
	}
	return nil
}

// writer builds Props in one form. implied is the option's implied first
// key (qom-type, type, cpus, size, ...): String writes its value bare when
// it comes first, as people and libvirt write it.
type writer struct {
	p       Props
	implied string
}

func newWriter(json bool, implied string) *writer {
	return &writer{p: Props{JSON: json}, implied: implied}
}

// String renders the props; in the key=value form a first item of the
// implied key is written as its value alone ("memory-backend-ram,id=m0",
// "node,nodeid=0", "4,sockets=2"), unless the value would read otherwise
// (empty, holding '=', or starting with '{').
func (w *writer) String() string {
	p := w.p
	if p.JSON || w.implied == "" || len(p.Items) == 0 || p.Items[0].Key != w.implied || !bareSafe(p.Items[0].Value) {
		return p.String()
	}
	first := escape(p.Items[0].Value)
	if len(p.Items) == 1 {
		return first
	}
	return first + "," + Props{Items: p.Items[1:]}.String()
}

// bareSafe says a value written without its key reads back as that key's.
func bareSafe(v string) bool {
	return v != "" && !strings.Contains(v, "=") && !strings.HasPrefix(strings.TrimSpace(v), "{")
}

func (w *writer) str(key, v string) {
	if v == "" {
		return
	}
	if w.p.JSON {
		b, _ := json.Marshal(v)
		v = string(b)
	}
	w.p.Items = append(w.p.Items, Prop{Key: key, Value: v})
}

func (w *writer) boolean(key string, b *bool) {
	if b == nil {
		return
	}
	v := "off"
	switch {
	case w.p.JSON:
		v = strconv.FormatBool(*b)
	case *b:
		v = "on"
	}
	w.p.Items = append(w.p.Items, Prop{Key: key, Value: v})
}

func (w *writer) num(key string, n *int) {
	if n != nil {
		w.p.Items = append(w.p.Items, Prop{Key: key, Value: strconv.Itoa(*n)})
	}
}

func (w *writer) size(key string, n uint64) {
	if n == 0 {
		return
	}
	v := memobj.FormatSize(n)
	if w.p.JSON {
		v = strconv.FormatUint(n, 10)
	}
	w.p.Items = append(w.p.Items, Prop{Key: key, Value: v})
}

// list writes a set as ranges, one key each (host-nodes=0-1,host-nodes=4),
// or a JSON array.
func (w *writer) list(key string, set cpuset.CPUSet, given bool) {
	if !given {
		return
	}
	ids := set.List()
	if w.p.JSON {
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = strconv.Itoa(id)
		}
		w.p.Items = append(w.p.Items, Prop{Key: key, Value: "[" + strings.Join(parts, ",") + "]"})
		return
	}
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		v := strconv.Itoa(ids[i])
		if j > i {
			v += "-" + strconv.Itoa(ids[j])
		}
		w.p.Items = append(w.p.Items, Prop{Key: key, Value: v})
		i = j + 1
	}
}

func (w *writer) extra(ps []Prop) { w.p.Items = append(w.p.Items, ps...) }
