// Package sdk helps write KeyStone metrics plugins in Go, for
// either runtime: a native program (runtime = "exec") or a WASI module
// built with GOOS=wasip1 GOARCH=wasm (runtime = "wasm").
//
// A plugin reads one JSON context document on stdin and prints one JSON
// document of metrics (and, optionally, state for its next run) on stdout:
//
//	func main() {
//		sdk.Main(func(ctx *sdk.Context, out *sdk.Output) error {
//			var st struct{ Runs int }
//			if err := ctx.LoadState(&st); err != nil {
//				return err
//			}
//			st.Runs++
//			out.Counter("runs_total", float64(st.Runs)).Help("Runs so far")
//			out.Gauge("queue_len", 3).Label("queue", "orders")
//			return out.SetState(st)
//		})
//	}
//
// The package uses only the standard library, so it builds for wasip1. It
// does not check names against Prometheus' rules or apply the recipe's
// mapping: the agent does both, and refuses the whole document if a name is
// invalid. Test a plugin by hand with
//
//	echo '{"component":"x","config":{},"state":null}' | ./plugin
package sdk
