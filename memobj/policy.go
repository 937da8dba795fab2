// Package memobj holds what qnuma knows of QEMU's memory and CPU settings
// apart from the command line itself (package qemucmd models and renders
// that): the Linux memory policy modes, backend kinds, sizes as QEMU reads
// and writes them, and -smp resolved as QEMU 7.2 resolves it (the QEMU
// version and its features are package qemuversion).
package memobj

import "fmt"

// Policy is a memory policy, as QEMU's memory backends spell it.
type Policy string

const (
	PolicyDefault    Policy = "default"
	PolicyPreferred  Policy = "preferred"
	PolicyBind       Policy = "bind"
	PolicyInterleave Policy = "interleave"
	// PolicyPreferredMany prefers a set of nodes (MPOL_PREFERRED_MANY,
	// Linux 5.15). A process policy only: QEMU's backends take no such
	// policy name (its policy=preferred with several host-nodes becomes
	// MPOL_PREFERRED_MANY when QEMU was built with it), and ParsePolicy
	// does not accept it.
	PolicyPreferredMany Policy = "preferred-many"
)

// ParsePolicy accepts the policy names qnuma's --policy takes.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case PolicyBind, PolicyPreferred, PolicyInterleave, PolicyDefault:
		return p, nil
	}
	return "", fmt.Errorf("unknown memory policy %q: want bind, preferred or interleave", s)
}

// Mode returns the Linux set_mempolicy mode (MPOL_*) for p.
func (p Policy) Mode() (int, error) {
	switch p {
	case PolicyDefault:
		return 0, nil // MPOL_DEFAULT
	case PolicyPreferred:
		return 1, nil // MPOL_PREFERRED
	case PolicyBind:
		return 2, nil // MPOL_BIND
	case PolicyInterleave:
		return 3, nil // MPOL_INTERLEAVE
	case PolicyPreferredMany:
		return 5, nil // MPOL_PREFERRED_MANY (4 is MPOL_LOCAL)
	}
	return 0, fmt.Errorf("unknown memory policy %q", string(p))
}
