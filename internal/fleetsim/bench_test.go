package fleetsim

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/keystone-edge/keystone/comms/controller"
	"github.com/keystone-edge/keystone/comms/fleet"
	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/internal/mqtttest"
	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/store"
)

// EnvBenchFleet sets the fleet size of the benchmarks (default 1000).
const EnvBenchFleet = "KEYSTONE_BENCH_FLEET"

// publishParallel bounds the jobs the controller side publishes at once.
const publishParallel = 32

func fleetSize(b *testing.B) int {
	n := 1000
	if v := os.Getenv(EnvBenchFleet); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive number of devices", EnvBenchFleet, v)
		}
	}
	return n
}

// raiseFileLimit raises the open-file limit the broker and the worker
// processes inherit to the hard limit; best effort. The worker processes
// are what keeps each under it (see workers).
func raiseFileLimit(b *testing.B, n int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur >= lim.Max {
		return
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Logf("cannot raise the open file limit to %d for %d devices: %v", lim.Max, n, err)
	}
}

// rssMB is the process's resident set, in MiB.
func rssMB() float64 { return procMiB(os.Getpid(), "VmRSS:") }

// procMiB reads a memory figure (VmRSS:, VmHWM:) of process pid, in MiB;
// 0 when it cannot.
func procMiB(pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// round is one measured publish-to-answer round over the fleet.
type round struct {
	total    time.Duration
	p50, p99 time.Duration
	lost     int
}

func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	at := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	return at(0.50), at(0.99)
}

func roundTimeout(n int) time.Duration {
	return max(2*time.Minute, time.Duration(n)*30*time.Millisecond)
}

// inParallel calls fn for every index, at most k at a time.
func inParallel(n, k int, fn func(i int)) {
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(k, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// rawFleet is the floor: bare autopaho clients with mutual TLS, each
// subscribed to its own jobs topic and answering every job once on a
// status topic, and one controller-identity client that publishes the jobs
// and takes the answers. No store, no checks, no signature. The clients
// live in worker processes laid out as the simulated fleet's (see
// workers); the controller side lives here.
type rawFleet struct {
	b      *testing.B
	ids    []string
	ctl    *autopaho.ConnectionManager
	hosts  *workers
	cancel context.CancelFunc

	mu      sync.Mutex
	got     map[string]time.Duration // this round's answers: latency by device
	done    chan struct{}
	current atomic.Int64 // the round the answers must carry
}

func mustURL(tb testing.TB, raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// rawID is the id of bare client i of n.
func rawID(i, n int) string { return fmt.Sprintf("raw-%0*d", len(fmt.Sprint(n-1)), i) }

func startRawFleet(b *testing.B, br *mqtttest.Broker, shared mqtttest.Shared, n int) *rawFleet {
	ctx, cancel := context.WithCancel(context.Background())
	r := &rawFleet{b: b, cancel: cancel}
	u := mustURL(b, br.URL)
	ctlID := br.ControllerIdentity(b)
	var err error
	r.ctl, err = autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, TlsCfg: ctlID.TLSConfig(), KeepAlive: 30, CleanStartOnInitialConnection: true,
		ConnectTimeout: 30 * time.Second,
		ClientConfig: paho.ClientConfig{ClientID: "raw-controller",
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){r.answer}},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.ctl.AwaitConnection(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := r.ctl.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: message.AllStatuses(br.Prefix), QoS: 1}}}); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		r.ids = append(r.ids, rawID(i, n))
	}
	r.hosts = startWorkers(b, workerBrief{Kind: "raw", Broker: shared, N: n}, workerCount(b, n))
	return r
}

// rawDevices are the bare clients one process hosts: devices From to To-1
// of a floor of N.
type rawDevices struct {
	clients  []*autopaho.ConnectionManager
	answered atomic.Int64
	cancel   context.CancelFunc
}

func startRawDevices(tb testing.TB, br *mqtttest.Broker, n, from, to int) *rawDevices {
	ctx, cancel := context.WithCancel(context.Background())
	r := &rawDevices{cancel: cancel}
	u := mustURL(tb, br.URL)
	ids := make([]string, to-from)
	idents := make([]*mqtttest.Identity, to-from)
	for i := range ids {
		ids[i] = rawID(from+i, n)
		idents[i] = br.Device(tb, ids[i])
	}
	r.clients = make([]*autopaho.ConnectionManager, len(ids))
	errs := make([]error, len(ids))
	inParallel(len(ids), startParallel, func(i int) {
		id := ids[i]
		topics := message.Topics{Prefix: br.Prefix, DeviceID: id}
		var cm atomic.Pointer[autopaho.ConnectionManager]
		onJob := func(pr paho.PublishReceived) (bool, error) {
			if pr.Packet.Topic != topics.JobNotify() || len(pr.Packet.Payload) == 0 {
				return true, nil
			}
			payload := slices.Clone(pr.Packet.Payload)
			go func() { // never publish from inside the receive handler
				pctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				if _, err := cm.Load().Publish(pctx, &paho.Publish{Topic: topics.JobStatus("raw"), QoS: 1, Payload: payload}); err != nil {
					if ctx.Err() == nil {
						tb.Errorf("%s: answer: %v", id, err)
					}
					return
				}
				r.answered.Add(1)
			}()
			return true, nil
		}
		c, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
			ServerUrls: []*url.URL{u}, TlsCfg: idents[i].TLSConfig(), KeepAlive: 30, CleanStartOnInitialConnection: true,
			ConnectTimeout: 30 * time.Second, ReconnectBackoff: autopaho.NewConstantBackoff(time.Second),
			ClientConfig: paho.ClientConfig{ClientID: id,
				OnPublishReceived: []func(paho.PublishReceived) (bool, error){onJob}},
		})
		if err != nil {
			errs[i] = err
			return
		}
		cm.Store(c)
		r.clients[i] = c
		actx, acancel := context.WithTimeout(ctx, time.Minute)
		defer acancel()
		if err := c.AwaitConnection(actx); err != nil {
			errs[i] = fmt.Errorf("%s: connect: %w", id, err)
			return
		}
		if _, err := c.Subscribe(actx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topics.JobNotify(), QoS: 1}}}); err != nil {
			errs[i] = fmt.Errorf("%s: subscribe: %w", id, err)
		}
	})
	for _, err := range errs {
		if err != nil {
			r.close()
			tb.Fatal(err)
		}
	}
	return r
}

func (r *rawDevices) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inParallel(len(r.clients), 64, func(i int) {
		if c := r.clients[i]; c != nil {
			_ = c.Disconnect(ctx)
		}
	})
	r.cancel()
}

// answer takes one device's answer: the round and the publish time, as
// the job carried them.
func (r *rawFleet) answer(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet.Payload
	if len(p) != 16 || int64(binary.BigEndian.Uint64(p[8:])) != r.current.Load() {
		return true, nil
	}
	lat := time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(p[:8]))))
	id, _, err := message.ParseStatusTopic(message.DefaultTopicPrefix, pr.Packet.Topic)
	if err != nil {
		return true, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, seen := r.got[id]; !seen && r.got != nil {
		r.got[id] = lat
		if len(r.got) == len(r.ids) {
			close(r.done)
		}
	}
	return true, nil
}

// run publishes one job per device (retained, QoS 1) and waits for every
// answer.
func (r *rawFleet) run(seq int64) round {
	r.mu.Lock()
	r.got, r.done = map[string]time.Duration{}, make(chan struct{})
	done := r.done
	r.mu.Unlock()
	r.current.Store(seq)
	ctx, cancel := context.WithTimeout(context.Background(), roundTimeout(len(r.ids)))
	defer cancel()
	start := time.Now()
	inParallel(len(r.ids), publishParallel, func(i int) {
		p := make([]byte, 16)
		binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
		binary.BigEndian.PutUint64(p[8:], uint64(seq))
		topic := message.Topics{Prefix: message.DefaultTopicPrefix, DeviceID: r.ids[i]}.JobNotify()
		if _, err := r.ctl.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: p}); err != nil {
			r.b.Errorf("publish to %s: %v", r.ids[i], err)
		}
	})
	select {
	case <-done:
	case <-ctx.Done():
	}
	total := time.Since(start)
	r.mu.Lock()
	defer r.mu.Unlock()
	lat := make([]time.Duration, 0, len(r.got))
	for _, l := range r.got {
		lat = append(lat, l)
	}
	p50, p99 := percentiles(lat)
	res := round{total: total, p50: p50, p99: p99, lost: len(r.ids) - len(r.got)}
	r.got = nil
	return res
}

func (r *rawFleet) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.hosts.stop()
	_ = r.ctl.Disconnect(ctx)
	r.cancel()
}

// BenchmarkRolloutRawFloor measures the floor under any rollout: N bare
// MQTT clients each take one retained QoS 1 message and answer it once at
// QoS 1; the time until every answer arrived, and each answer's latency
// from its publication.
func BenchmarkRolloutRawFloor(b *testing.B) {
	n := fleetSize(b)
	b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
		br, shared := startBenchBroker(b, n)
		raw := startRawFleet(b, br, shared, n)
		defer raw.close()
		var total, p50, p99 time.Duration
		lost, rounds := 0, 0
		for b.Loop() {
			rounds++
			r := raw.run(int64(rounds))
			total += r.total
			p50 += r.p50
			p99 += r.p99
			lost += r.lost
		}
		if lost > 0 {
			b.Errorf("%d answers never arrived", lost)
		}
		d := time.Duration(rounds)
		b.ReportMetric((total / d).Seconds(), "s/rollout")
		b.ReportMetric(float64((p50/d).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64((p99/d).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lost), "lost")
	})
}

// simRound collects one round's final statuses at the controller.
type simRound struct {
	mu      sync.Mutex
	jobID   string
	sent    map[string]time.Time
	lat     map[string]time.Duration
	status  map[string]string
	want    int
	done    chan struct{}
	settled bool
}

func (s *simRound) onStatus(st message.JobStatus) {
	switch st.Status {
	case message.StatusQueued, message.StatusInProgress:
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.settled || st.JobID != s.jobID {
		return
	}
	if _, seen := s.status[st.DeviceID]; seen {
		return
	}
	s.status[st.DeviceID] = st.Status
	if t, ok := s.sent[st.DeviceID]; ok {
		s.lat[st.DeviceID] = now.Sub(t)
	}
	if len(s.status) == s.want {
		close(s.done)
	}
}

// BenchmarkSimulatedFleet measures a one-component rollout to N simulated
// devices running the real device code: each job signed and published by
// comms/controller, and the time until every SUCCEEDED arrived. The raw
// floor is measured first, on the same broker, for the ratio.
func BenchmarkSimulatedFleet(b *testing.B) {
	n := fleetSize(b)
	b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
		br, shared := startBenchBroker(b, n)
		raw := startRawFleet(b, br, shared, n)
		floor := raw.run(1)
		raw.close()
		if floor.lost > 0 {
			b.Errorf("raw floor: %d answers never arrived", floor.lost)
		}
		b.Logf("raw floor, %d devices: %.3f s, p50 %s, p99 %s", n, floor.total.Seconds(), floor.p50, floor.p99)
		runtime.GC()

		setup := time.Now()
		key := newSignKey(b)
		sim := startWorkers(b, workerBrief{Kind: "sim", Broker: shared, N: n, Seed: 1, SignKey: key}, workerCount(b, n))
		setupTime := time.Since(setup)
		b.Logf("fleet of %d started in %.1f s in %d processes", n, setupTime.Seconds(), len(sim.procs))
		rec := &simRound{}
		ctlID := br.ControllerIdentity(b)
		cfg := controller.Config{BrokerURL: br.URL, CAFile: ctlID.CAFile, CertFile: ctlID.CertFile, KeyFile: ctlID.KeyFile,
			TopicPrefix: br.Prefix, SignKey: key}
		cfg.ClientID = "bench-controller"
		cfg.OnStatus = rec.onStatus
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		ctl, err := controller.Connect(ctx, cfg)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		defer ctl.Close(context.Background())

		ids := make([]string, n)
		for i := range ids {
			ids[i] = simID(i, n)
		}
		var total, p50, p99 time.Duration
		lost, notOK, rounds := 0, 0, 0
		for b.Loop() {
			rounds++
			jobID := fmt.Sprintf("bench-%d", rounds)
			rec.mu.Lock()
			rec.jobID, rec.want, rec.settled = jobID, n, false
			rec.sent, rec.lat, rec.status = make(map[string]time.Time, n), make(map[string]time.Duration, n), make(map[string]string, n)
			rec.done = make(chan struct{})
			done := rec.done
			rec.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), roundTimeout(n))
			start := time.Now()
			inParallel(n, publishParallel, func(i int) {
				job := Job(ids[i], jobID, "com.example.hello", fmt.Sprintf("1.%d.0", rounds))
				rec.mu.Lock()
				rec.sent[ids[i]] = time.Now()
				rec.mu.Unlock()
				if err := ctl.PublishJob(ctx, job); err != nil {
					b.Errorf("publish to %s: %v", ids[i], err)
				}
			})
			select {
			case <-done:
			case <-ctx.Done():
			}
			elapsed := time.Since(start)
			cancel()
			rec.mu.Lock()
			rec.settled = true
			lat := make([]time.Duration, 0, len(rec.lat))
			for _, l := range rec.lat {
				lat = append(lat, l)
			}
			for _, s := range rec.status {
				if s != message.StatusSucceeded {
					notOK++
				}
			}
			lost += n - len(rec.status)
			rec.mu.Unlock()
			q50, q99 := percentiles(lat)
			total += elapsed
			p50 += q50
			p99 += q99
		}
		rss := rssMB()
		counts, _, _ := sumReports(sim.stop())
		if lost > 0 || notOK > 0 {
			b.Errorf("%d final statuses never arrived, %d were not SUCCEEDED", lost, notOK)
		}
		d := time.Duration(rounds)
		mean := total / d
		b.ReportMetric(mean.Seconds(), "s/rollout")
		b.ReportMetric(float64((p50/d).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64((p99/d).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lost), "lost")
		b.ReportMetric(rss, "rss-MiB")
		b.ReportMetric(setupTime.Seconds(), "setup-s")
		b.ReportMetric(floor.total.Seconds(), "floor-s")
		b.ReportMetric(mean.Seconds()/floor.total.Seconds(), "x-floor")
		b.Logf("simulated fleet, %d devices: %.3f s per rollout (p50 %s, p99 %s), floor %.3f s, ratio %.1f, controller process RSS %.0f MiB, counts %+v",
			n, mean.Seconds(), p50/d, p99/d, floor.total.Seconds(), mean.Seconds()/floor.total.Seconds(), rss, counts)
	})
}

// BenchmarkFleetRollout is a whole rollout as an operator runs it:
// `keystonectl fleet deploy --wait` (built from this tree, its own
// process, its state file on disk) of a one-component deployment to every
// simulated device, one ring, no rate limit, no soak, against the
// bare-client floor measured in the same run on the same broker. It
// reports the command's time from its start to its exit with every device
// SUCCEEDED (s/deploy), the rollout's own span in its record from the
// first job to the last success (s/rollout), each job's latency from its
// publishing to its final status (p50-ms, p99-ms), the command's peak RSS
// (controller-MiB), the final statuses that never reached the controller
// (lost), the floor (floor-s) and s/deploy over the floor (x-floor).
// KEYSTONE_BENCH_FLEET sets the fleet size (default 1000).
func BenchmarkFleetRollout(b *testing.B) {
	n := fleetSize(b)
	b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
		ctl := buildKeystonectl(b)
		br, shared := startBenchBroker(b, n)
		raw := startRawFleet(b, br, shared, n)
		floorCPU := cpuProbe(br, raw.hosts)
		floor := raw.run(1)
		floorCPU.stop()
		raw.close()
		if floor.lost > 0 {
			b.Errorf("raw floor: %d answers never arrived", floor.lost)
		}
		runtime.GC()
		signKey := newSignKey(b)
		sim := startWorkers(b, workerBrief{Kind: "sim", Broker: shared, N: n, Seed: 1, SignKey: signKey}, workerCount(b, n))
		setupSecs, files := sim.setup()
		b.Logf("%d simulated devices in %d processes connected in %.1f s; at most %d open files in one", n, len(sim.procs), setupSecs, files)

		dir := b.TempDir()
		id := br.ControllerIdentity(b)
		key := filepath.Join(dir, "ops.key")
		if err := sign.WritePrivateKey(key, signKey); err != nil {
			b.Fatal(err)
		}
		statePath := filepath.Join(dir, "fleet.db") // on disk, as a controller's is
		conf := filepath.Join(dir, "fleet.toml")
		writeBenchFile(b, conf, fmt.Sprintf("broker = %q\nca_file = %q\ncert_file = %q\nkey_file = %q\ntopic_prefix = %q\nstate = %q\nsign_key = %q\n",
			br.URL, id.CAFile, id.CertFile, id.KeyFile, br.Prefix, statePath, key))

		var deploy, span, p50, p99 time.Duration
		var rssMax, ctlCPU float64
		lost, rounds := 0, 0
		simCPU := cpuProbe(br, sim)
		for b.Loop() {
			rounds++
			rollout := fmt.Sprintf("bench-%d", rounds)
			manifest := filepath.Join(dir, rollout+".toml")
			writeBenchFile(b, manifest, fmt.Sprintf("format = 1\n\n[[components]]\nname = %q\nversion = %q\n", "com.sim.app", fmt.Sprintf("1.0.%d", rounds)))
			ctx, cancel := context.WithTimeout(context.Background(), roundTimeout(n))
			cmd := exec.CommandContext(ctx, ctl, "fleet", "--config", conf, "deploy", "-f", manifest, "--id", rollout,
				"--target", "group:sim", "--rings", "100%", "--rate", "0", "--soak", "0s", "--device-timeout", "10m",
				"--max-failure-rate", "100%", "--wait")
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			start := time.Now()
			err := cmd.Start()
			if err == nil {
				// The peak RSS of the command's own image (VmHWM), read
				// until it exits: the rusage of a child started by a
				// large process counts that process's pages too.
				stop := make(chan struct{})
				peak := make(chan float64, 1)
				go func() {
					hwm := 0.0
					for {
						hwm = max(hwm, procMiB(cmd.Process.Pid, "VmHWM:"))
						select {
						case <-stop:
							peak <- hwm
							return
						case <-time.After(20 * time.Millisecond):
						}
					}
				}()
				err = cmd.Wait()
				close(stop)
				rssMax = max(rssMax, <-peak)
			}
			took := time.Since(start)
			cancel()
			if err != nil {
				b.Fatalf("keystonectl fleet deploy: %v\n%s", err, out.String())
			}
			ctlCPU += (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
			r := readRollout(b, statePath, rollout)
			deploy += took
			span += r.span
			p50 += r.p50
			p99 += r.p99
			lost += n - r.succeeded
			if r.succeeded < n {
				tail := out.String()
				b.Logf("%s: %d of %d SUCCEEDED; keystonectl said:\n%s", rollout, r.succeeded, n, tail[max(0, len(tail)-2000):])
			}
		}
		simCPU.stop()
		counts, _, _ := sumReports(sim.stop())
		if lost > 0 {
			b.Errorf("%d devices never reported SUCCEEDED to the controller", lost)
		}
		if want := int64(n * rounds); counts.Succeeded != want {
			b.Errorf("the devices' engines count %+v; want %d SUCCEEDED", counts, want)
		}
		d := time.Duration(rounds)
		mean := deploy / d
		b.ReportMetric(mean.Seconds(), "s/deploy")
		b.ReportMetric((span / d).Seconds(), "s/rollout")
		b.ReportMetric(float64((p50/d).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64((p99/d).Microseconds())/1000, "p99-ms")
		b.ReportMetric(rssMax, "controller-MiB")
		b.ReportMetric(float64(lost), "lost")
		b.ReportMetric(floor.total.Seconds(), "floor-s")
		b.ReportMetric(mean.Seconds()/floor.total.Seconds(), "x-floor")
		// Where the CPU went (seconds per rollout, all processes of a
		// kind together), against the floor's round: on two cores the
		// wall time cannot be below half their sum.
		devCPU, brokerCPU := simCPU.devices/float64(rounds), simCPU.broker/float64(rounds)
		b.ReportMetric(devCPU, "cpu-devices-s")
		b.ReportMetric(brokerCPU, "cpu-broker-s")
		b.ReportMetric(ctlCPU/float64(rounds), "cpu-ctl-s")
		b.ReportMetric(floorCPU.devices+floorCPU.broker+floorCPU.self, "floor-cpu-s")
		b.Logf("fleet deploy to %d devices: %.2f s (rollout %.2f s, job p50 %s, p99 %s), controller peak RSS %.0f MiB, %d lost; floor %.3f s (p50 %s, p99 %s); ratio %.1f",
			n, mean.Seconds(), (span / d).Seconds(), p50/d, p99/d, rssMax, lost, floor.total.Seconds(), floor.p50, floor.p99, mean.Seconds()/floor.total.Seconds())
		b.Logf("CPU per rollout: devices %.2f s, broker %.2f s, keystonectl %.2f s; floor round: bare clients %.2f s, broker %.2f s, its controller %.2f s",
			devCPU, brokerCPU, ctlCPU/float64(rounds), floorCPU.devices, floorCPU.broker, floorCPU.self)
	})
}

// startBenchBroker starts mosquitto (or the broker asked for) for a fleet
// of n, checks that it may hold a connection per device, and shares it
// with the worker processes.
func startBenchBroker(b *testing.B, n int) (*mqtttest.Broker, mqtttest.Shared) {
	raiseFileLimit(b, n)
	br := mqtttest.Start(b, mqtttest.Options{})
	if pid := br.PID(); pid != 0 {
		if lim := procFileLimit(pid); lim > 0 && lim < n+256 {
			b.Fatalf("mosquitto may open %d files; %d devices need a connection each", lim, n)
		}
	}
	return br, br.Share(b)
}

func newSignKey(b *testing.B) ed25519.PrivateKey {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return key
}

// cpuUse is the CPU seconds the device processes, the broker and this
// process used between a probe's start and its stop.
type cpuUse struct {
	w                     *workers
	brokerPID             int
	devices, broker, self float64
}

func cpuProbe(br *mqtttest.Broker, w *workers) *cpuUse {
	c := &cpuUse{w: w, brokerPID: br.PID()}
	c.devices, c.broker, c.self = -w.cpu(), -procCPUSeconds(c.brokerPID), -cpuSeconds()
	return c
}

func (c *cpuUse) stop() {
	c.devices += c.w.cpu()
	c.broker += procCPUSeconds(c.brokerPID)
	c.self += cpuSeconds()
}

var keystonectl struct {
	once sync.Once
	path string
	err  error
}

// buildKeystonectl builds keystonectl from this tree once per process, as
// shipped (no cgo).
func buildKeystonectl(b *testing.B) string {
	keystonectl.once.Do(func() {
		dir, err := os.MkdirTemp("", "keystone-bench-")
		if err != nil {
			keystonectl.err = err
			return
		}
		keystonectl.path = filepath.Join(dir, "keystonectl")
		cmd := exec.Command("go", "build", "-o", keystonectl.path, "github.com/keystone-edge/keystone/cmd/keystonectl")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			keystonectl.err = fmt.Errorf("build keystonectl: %v\n%s", err, out)
		}
	})
	if keystonectl.err != nil {
		b.Fatal(keystonectl.err)
	}
	return keystonectl.path
}

func writeBenchFile(b *testing.B, path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		b.Fatal(err)
	}
}

// recorded is a rollout as its record tells it.
type recorded struct {
	succeeded int
	span      time.Duration // from the first job published to the last final status
	p50, p99  time.Duration // from each job's publishing to its final status
}

func readRollout(b *testing.B, path, id string) recorded {
	st, err := store.OpenFleet(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ro, err := st.Rollout(context.Background(), id)
	if err != nil {
		b.Fatal(err)
	}
	c, err := fleet.RestoreJSON(ro.State)
	if err != nil {
		b.Fatal(err)
	}
	var r recorded
	var first, last time.Time
	var lat []time.Duration
	for _, d := range c.Devices() {
		if d.Outcome != fleet.Succeeded {
			continue
		}
		r.succeeded++
		lat = append(lat, d.StatusAt.Sub(d.PublishedAt))
		if first.IsZero() || d.PublishedAt.Before(first) {
			first = d.PublishedAt
		}
		if d.StatusAt.After(last) {
			last = d.StatusAt
		}
	}
	r.span = last.Sub(first)
	r.p50, r.p99 = percentiles(lat)
	return r
}
