package runner

import (
	"os"
	"path/filepath"

	"github.com/keystone-edge/keystone/runner/shim"
)

// IsShim reports whether the program was started as the runner's shim
// (args is os.Args). A main that uses the runner calls it first:
//
//	if runner.IsShim(os.Args) {
//		runner.ShimMain()
//	}
//
// and so must a TestMain of a package whose tests start processes. The
// shim itself lives in package runner/shim; cmd/keystone-shim is a small
// program that is nothing else.
func IsShim(args []string) bool { return shim.Is(args) }

// ShimMain turns this process into the component's process and never
// returns: it execs the target, or reports why it could not to the parent
// and exits with status 127 (see shim.Main).
func ShimMain() { shim.Main() }

// ShimName is the file name of the dedicated shim program
// (cmd/keystone-shim) that New uses when it lies next to the running
// executable.
const ShimName = "keystone-shim"

// selfExe is the running image itself: still there after a self-update has
// replaced or removed the file it was started from.
const selfExe = "/proc/self/exe"

// defaultShim is the shim New uses when Config.ShimPath is "": ShimName in
// the directory of exe (the running executable's path; "" = unknown) if it
// is an executable regular file, else the running image itself.
func defaultShim(exe string) string {
	if exe != "" {
		p := filepath.Join(filepath.Dir(exe), ShimName)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if _, err := os.Stat(selfExe); err != nil && exe != "" {
		return exe // no /proc: the file the program was started from
	}
	return selfExe
}
