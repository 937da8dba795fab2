package main

import "testing"

// TestUsageExitCodes: input qnuma cannot act on exits 2, having started
// nothing.
func TestUsageExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no command shows the help", nil},
		{"stat of a pid that does not exist", []string{"stat", "--state-dir", t.TempDir(), "2147483646"}},
		{"stat of a name not in the ledger", []string{"stat", "--state-dir", t.TempDir(), "no-such-vm"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := run(tt.args); code != 2 {
				t.Errorf("qnuma %q exited %d, want 2", tt.args, code)
			}
		})
	}
}
