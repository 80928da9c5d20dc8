package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// binaries are the programs the tests drive, built once for the package.
type binaries struct {
	agent string // keystone-agent
	ctl   string // keystonectl
	svc   string // testdata/svc, the component the tests deploy
	// svcSHA256 is svc's digest, for the recipes' artifacts.
	svcSHA256 string
}

// built is set by TestMain before any test runs and never changed after.
var built binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keystone-e2e-bin-")
	// Other users run keystonectl too (the socket permission test).
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err == nil {
		built, err = buildAll(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildAll builds the binaries into dir the way they ship: CGO_ENABLED=0.
func buildAll(dir string) (binaries, error) {
	b := binaries{
		agent: filepath.Join(dir, "keystone-agent"),
		ctl:   filepath.Join(dir, "keystonectl"),
		svc:   filepath.Join(dir, "svc"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for out, pkg := range map[string]string{
		b.agent: "../../cmd/keystone-agent",
		b.ctl:   "../../cmd/keystonectl",
		b.svc:   "./testdata/svc",
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
		}
	}
	data, err := os.ReadFile(b.svc)
	if err != nil {
		return b, err
	}
	sum := sha256.Sum256(data)
	b.svcSHA256 = hex.EncodeToString(sum[:])
	return b, nil
}
