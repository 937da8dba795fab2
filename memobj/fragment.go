package memobj

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Fragment is one piece of a QEMU command line. Args assumes Validate
// passed; use Render to get both.
type Fragment interface {
	Validate() error
	Args() []string
}

// Render validates every fragment and joins their arguments in order. Any
// invalid fragment fails the whole: nothing is dropped.
func Render(frags ...Fragment) ([]string, error) {
	var args []string
	for _, f := range frags {
		if err := f.Validate(); err != nil {
			return nil, err
		}
		args = append(args, f.Args()...)
	}
	return args, nil
}

// maxNUMANodes is QEMU's MAX_NODES: guest node ids and host-nodes values
// must stay below it.
const maxNUMANodes = 128

// validID reports whether QEMU accepts s as an object id (a letter, then
// letters, digits, '-', '.', '_').
func validID(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && (c < '0' || c > '9') && c != '-' && c != '.' && c != '_' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// checkNodes validates a list of node ids for QEMU (0..127, no repeats).
func checkNodes(nodes []int) error {
	seen := map[int]bool{}
	for _, n := range nodes {
		if n < 0 || n >= maxNUMANodes {
			return fmt.Errorf("node %d out of range 0-%d", n, maxNUMANodes-1)
		}
		if seen[n] {
			return fmt.Errorf("node %d listed twice", n)
		}
		seen[n] = true
	}
	return nil
}

// listOpts writes a list property the way QEMU's options visitor reads it
// on the command line: the key repeated, each value a number or an
// inclusive range ("host-nodes=0-1,host-nodes=3" is [0, 1, 3]).
// Dotted keys ("host-nodes.0=") are rejected there.
func listOpts(key string, ids []int) string {
	s := slices.Clone(ids)
	slices.Sort(s)
	var parts []string
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		v := strconv.Itoa(s[i])
		if j > i {
			v += "-" + strconv.Itoa(s[j])
		}
		parts = append(parts, key+"="+v)
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// escapeOpt doubles commas, QEMU's escape for a comma inside a value.
func escapeOpt(v string) string { return strings.ReplaceAll(v, ",", ",,") }
