package supervisor

import (
	"os"
	"testing"

	"github.com/keystone-edge/keystone/runner"
)

// The test binary doubles as the runner's shim: components started by the
// tests' supervisors re-execute it.
func TestMain(m *testing.M) {
	if runner.IsShim(os.Args) {
		runner.ShimMain()
	}
	os.Exit(m.Run())
}
