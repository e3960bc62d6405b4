package testenv_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/testenv"
)

// TestMissingSkipsAndRecords checks that outside CI a missing server skips
// the test and leaves a line naming the package and the reason.
func TestMissingSkipsAndRecords(t *testing.T) {
	log := filepath.Join(t.TempDir(), "skips")
	t.Setenv("CI", "")
	t.Setenv(testenv.SkipLogEnv, log)
	var skipped bool
	t.Run("needs", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		testenv.Missing(t, "Frob at 127.0.0.1:1", "connection refused", "start it")
	})
	if !skipped {
		t.Fatal("the test was not skipped")
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := "./internal/testenv: needs Frob at 127.0.0.1:1: connection refused (start it)\n"
	if string(b) != want {
		t.Errorf("skip log %q, want %q", b, want)
	}
}

// TestMissingFailsUnderCI runs a test that finds its server missing in a
// child process with CI=true: it must fail there, not skip.
func TestMissingFailsUnderCI(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		testenv.Missing(t, "Frob", "absent", "")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestMissingFailsUnderCI$", "-test.v")
	cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", "CI=true", testenv.SkipLogEnv+"=")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--- FAIL") || !strings.Contains(string(out), "CI=true") {
		t.Errorf("under CI=true the child did not fail (err %v):\n%s", err, out)
	}
}
