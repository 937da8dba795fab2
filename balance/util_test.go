package balance_test

import (
	"os"
	"path/filepath"
)

func writeFile(root, name, s string) error {
	return os.WriteFile(filepath.Join(root, name), []byte(s), 0o644)
}
