// Command sysload-wasm is a KeyStone metrics plugin written in Go with the
// plugin SDK (package runner/plugin/sdk) and built as a WASI module:
//
//	GOOS=wasip1 GOARCH=wasm go build -o bin/examples/sysload.wasm ./recipes/examples/sysload-wasm
//
// (`make examples` does it). It reads the load average, uptime and memory
// from /proc — the files its recipe lists in plugin.fs_read, the only files
// the module can open — and counts its runs in the state the agent keeps
// between runs. Built natively it is an exec plugin just the same.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/keystone-edge/keystone/runner/plugin/sdk"
)

// state is kept by the agent between runs.
type state struct {
	Runs int `json:"runs"`
}

func main() { sdk.Main(collect) }

func collect(ctx *sdk.Context, out *sdk.Output) error {
	var st state
	if err := ctx.LoadState(&st); err != nil {
		return err
	}
	st.Runs++

	load, err := fields("/proc/loadavg", 3)
	if err != nil {
		return err
	}
	up, err := fields("/proc/uptime", 1)
	if err != nil {
		return err
	}
	mem, err := meminfo("/proc/meminfo")
	if err != nil {
		return err
	}
	for i, window := range []string{"1m", "5m", "15m"} {
		out.Gauge("load_average", load[i]).Label("window", window).Help("Load average over the window")
	}
	out.Gauge("uptime_seconds", up[0]).Help("Seconds since boot")
	out.Gauge("memory_available_bytes", mem["MemAvailable"]).Help("MemAvailable from /proc/meminfo")
	out.Gauge("memory_total_bytes", mem["MemTotal"]).Help("MemTotal from /proc/meminfo")
	out.Counter("runs_total", float64(st.Runs)).Help("Runs of this plugin")
	return out.SetState(st)
}

// fields reads the first n numbers of a one-line /proc file.
func fields(path string, n int) ([]float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(b))
	if len(f) < n {
		return nil, fmt.Errorf("%s: %d fields, want %d", path, len(f), n)
	}
	out := make([]float64, n)
	for i := range n {
		if out[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return out, nil
}

// meminfo reads /proc/meminfo into bytes by key.
func meminfo(path string) (map[string]float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		f := strings.Fields(rest)
		if !ok || len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			v *= 1024
		}
		out[key] = v
	}
	if out["MemTotal"] == 0 {
		return nil, fmt.Errorf("%s: no MemTotal", path)
	}
	return out, nil
}
