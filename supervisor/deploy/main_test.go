package deploy_test

import (
	"os"
	"testing"

	"github.com/keystone-edge/keystone/runner"
)

func TestMain(m *testing.M) {
	if runner.IsShim(os.Args) {
		runner.ShimMain()
	}
	os.Exit(m.Run())
}
