package sdk_test

import (
	"os"
	"strings"

	"github.com/keystone-edge/keystone/runner/plugin/sdk"
)

// A plugin's run: read the context, count the run in the state, emit a
// counter and a labelled gauge.
func Example() {
	ctx, err := sdk.ReadContext(strings.NewReader(`{"component":"com.example.orders","config":{},"state":{"runs":41}}`))
	if err != nil {
		panic(err)
	}
	var st struct {
		Runs int `json:"runs"`
	}
	if err := ctx.LoadState(&st); err != nil {
		panic(err)
	}
	st.Runs++
	var out sdk.Output
	out.Counter("runs_total", float64(st.Runs)).Help("Runs of this plugin")
	out.Gauge("queue_len", 3).Label("queue", "orders")
	if err := out.SetState(st); err != nil {
		panic(err)
	}
	if err := out.Write(os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// {"metrics":[{"name":"runs_total","type":"counter","help":"Runs of this plugin","value":42},{"name":"queue_len","type":"gauge","labels":{"queue":"orders"},"value":3}],"state":{"runs":42}}
}
