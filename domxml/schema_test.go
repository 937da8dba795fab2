package domxml

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requireValidator skips without libvirt's virt-xml-validate (Debian
// libvirt-clients, with xmllint from libxml2-utils), except under CI=true,
// where scripts/deps.sh has installed them and their absence is a failure.
func requireValidator(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("virt-xml-validate")
	if err == nil {
		_, err = exec.LookPath("xmllint")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("virt-xml-validate and xmllint are needed under CI=true (scripts/deps.sh installs libvirt-clients and libxml2-utils): %v", err)
		}
		t.Skipf("SKIP: libvirt's schema validator is not installed (apt-get install libvirt-clients libxml2-utils): %v", err)
	}
	return path
}

func validateXML(t *testing.T, validator, file string) (string, error) {
	out, err := exec.Command(validator, file, "domain").CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestTestdataIsLibvirtXML checks every testdata domain against libvirt's
// own schema, so the inputs of the golden tests are real libvirt XML.
func TestTestdataIsLibvirtXML(t *testing.T) {
	validator := requireValidator(t)
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.xml: %v", err)
	}
	for _, f := range files {
		if out, err := validateXML(t, validator, f); err != nil {
			t.Errorf("%s is not valid libvirt domain XML: %v\n%s", f, err, out)
		}
	}
}

// TestValidatorRefuses is the negative control: a domain that breaks
// libvirt's schema (a numatune mode libvirt does not know) fails it.
func TestValidatorRefuses(t *testing.T) {
	validator := requireValidator(t)
	data, err := os.ReadFile("testdata/three-cells-modes.xml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), "mode='interleave'", "mode='bind'", 1)
	if bad == string(data) {
		t.Fatal("three-cells-modes.xml has no mode='interleave' to break")
	}
	f := filepath.Join(t.TempDir(), "bad.xml")
	if err := os.WriteFile(f, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := validateXML(t, validator, f); err == nil {
		t.Errorf("virt-xml-validate accepted mode='bind':\n%s", out)
	}
	if _, err := Parse([]byte(bad)); err == nil {
		t.Error("Parse accepted mode='bind'")
	}
}
