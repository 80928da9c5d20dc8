package fleetsim

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/comms"
	"github.com/keystone-edge/keystone/comms/controller"
	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/internal/mqtttest"
	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// Options says how many devices to simulate and how they behave. The
// fractions are of N, rounded to the nearest device, and the devices that
// take each role are drawn with Seed.
type Options struct {
	// N is the number of devices; at least one.
	N int
	// From and To, when To is not zero, make this Sim one part of a fleet
	// of N devices hosted by several processes: it runs devices From to
	// To-1 only, with the ids, roles and offline draws they have in the
	// whole fleet.
	From, To int
	// Failing is the fraction of devices whose deployments fail.
	Failing float64
	// Silent is the fraction of devices that take a deployment and never
	// finish it (they report QUEUED and IN_PROGRESS, nothing final). A
	// device is failing or silent, never both.
	Silent float64
	// Offline is the fraction of devices not connected by Start; Connect
	// brings one online. Drawn independently of Failing and Silent.
	Offline float64
	// Slow is how long each deployment spends in its start step; zero
	// finishes it at once.
	Slow time.Duration
	// Seed draws the roles; the same seed and N give the same devices the
	// same roles.
	Seed uint64
	// IDPrefix starts every device id; empty means "sim-". The ids are the
	// prefix and a zero-padded number from 0.
	IDPrefix string
	// SignKey is the key the devices trust job signatures from; nil makes
	// a new one (see Sim.SignKey).
	SignKey ed25519.PrivateKey
	// StoreDir is the folder the devices' store files go in; empty means
	// a new folder in /dev/shm when it exists (the store syncs every
	// commit, and on one shared disk those syncs would measure the
	// machine, not the code), else in the test's temporary folder.
	StoreDir string
	// Logger receives every device's log (with its device_id); nil
	// discards them.
	Logger *slog.Logger
}

// Sim is a running simulated fleet. Its methods may be called from any
// goroutine.
type Sim struct {
	tb     testing.TB
	broker *mqtttest.Broker
	key    ed25519.PrivateKey
	ids    []string
	count  counters
	dir    string
	rmDir  bool
	life   context.Context
	end    context.CancelFunc

	devices map[string]*device // fixed after Start

	stopOnce sync.Once
	running  sync.WaitGroup
}

// device is one simulated device.
type device struct {
	id      string
	role    Role
	offline bool // at Start
	dev     *comms.Device
	st      *store.Store
	eng     *engine

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// Counts are the fleet's deployment counters.
type Counts struct {
	Received  int64 // deployments submitted to the stand-in engines (jobs taken)
	Succeeded int64 // deployments ended SUCCEEDED
	Failed    int64 // deployments ended FAILED
	Canceled  int64 // deployments ended CANCELED
}

// Answered is the number of deployments that ended, whatever the end.
func (c Counts) Answered() int64 { return c.Succeeded + c.Failed + c.Canceled }

// startParallel bounds how many devices connect at once: a burst of TLS
// handshakes beyond the broker's pace only times out and backs off.
const startParallel = 16

// openParallel bounds how many stores are opened at once.
const openParallel = 8

// connectTimeout bounds the wait for one device's first connection.
const connectTimeout = time.Minute

// Start makes the fleet's identities and stores, connects every device
// that is not offline and returns once they all are connected. The fleet
// stops when the test ends, if Stop was not called before.
func Start(tb testing.TB, broker *mqtttest.Broker, opts Options) *Sim {
	tb.Helper()
	if err := opts.check(); err != nil {
		tb.Fatalf("fleetsim: %v", err)
	}
	if err := checkFileLimit(opts.hosted()); err != nil {
		tb.Fatalf("fleetsim: %v", err)
	}
	s := &Sim{tb: tb, broker: broker, key: opts.SignKey, devices: map[string]*device{}}
	if s.key == nil {
		var err error
		if _, s.key, err = ed25519.GenerateKey(rand.Reader); err != nil {
			tb.Fatal(err)
		}
	}
	ring, err := sign.NewKeyring(s.key.Public().(ed25519.PublicKey))
	if err != nil {
		tb.Fatal(err)
	}
	s.dir, s.rmDir = storeDir(tb, opts.StoreDir)
	s.life, s.end = context.WithCancel(context.Background())
	tb.Cleanup(s.Stop)

	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	prefix := opts.IDPrefix
	if prefix == "" {
		prefix = "sim-"
	}
	width := len(fmt.Sprint(opts.N - 1))
	roles, offline := draw(opts)
	from, to := opts.part()
	for i := from; i < to; i++ {
		id := fmt.Sprintf("%s%0*d", prefix, width, i)
		s.ids = append(s.ids, id)
		s.devices[id] = &device{id: id, role: roles[i], offline: offline[i]}
	}

	if err := s.openStores(); err != nil {
		tb.Fatalf("fleetsim: %v", err)
	}
	for _, id := range s.ids {
		d := s.devices[id]
		ident := broker.Device(tb, id) // its certificate files, CN = device id
		bus := events.New(nil)
		d.eng = newEngine(s.life, bus, d.role, opts.Slow, &s.count)
		d.dev, err = comms.New(comms.Config{
			DeviceID: id, AgentVersion: "sim", Groups: []string{"sim", d.role.String()},
			BrokerURL: broker.URL, CAFile: ident.CAFile, CertFile: ident.CertFile, KeyFile: ident.KeyFile,
			TopicPrefix: broker.Prefix, Keyring: ring, Store: d.st, Deployer: d.eng, Bus: bus,
			Components: d.eng.components, Logger: logger.With("device_id", id),
		})
		if err != nil {
			tb.Fatalf("fleetsim: device %s: %v", id, err)
		}
	}

	var online []string
	for _, id := range s.ids {
		if !s.devices[id].offline {
			online = append(online, id)
		}
	}
	if err := s.connectAll(online); err != nil {
		tb.Fatalf("fleetsim: %v", err)
	}
	return s
}

// filesPerDevice is what one device holds open: its connection, and its
// store's two connections (writer and one reader), each on the database
// and its WAL, sharing one handle on the shared-memory file.
const filesPerDevice = 6

// checkFileLimit refuses a fleet whose files would pass the process's
// open file limit, which would fail part way with "unable to open
// database file".
func checkFileLimit(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil
	}
	if need := uint64(n*filesPerDevice + 512); need > lim.Cur {
		return fmt.Errorf("%d devices need about %d open files (%d each); the limit is %d: raise it (ulimit -n) or simulate at most %d",
			n, need, filesPerDevice, lim.Cur, (max(lim.Cur, 512)-512)/filesPerDevice)
	}
	return nil
}

func (o Options) check() error {
	switch {
	case o.N < 1:
		return fmt.Errorf("N is %d, want at least 1", o.N)
	case o.Failing < 0 || o.Silent < 0 || o.Offline < 0 || o.Failing > 1 || o.Silent > 1 || o.Offline > 1:
		return errors.New("Failing, Silent and Offline are fractions from 0 to 1")
	case o.Failing+o.Silent > 1:
		return errors.New("Failing and Silent add up to more than the whole fleet")
	case o.Slow < 0:
		return errors.New("Slow is negative")
	case o.To != 0 && (o.From < 0 || o.From >= o.To || o.To > o.N):
		return fmt.Errorf("devices %d to %d are not a part of a fleet of %d", o.From, o.To-1, o.N)
	}
	return nil
}

// part is the range of device numbers this Sim runs.
func (o Options) part() (from, to int) {
	if o.To == 0 {
		return 0, o.N
	}
	return o.From, o.To
}

// hosted is the number of devices this Sim runs.
func (o Options) hosted() int {
	from, to := o.part()
	return to - from
}

// draw gives each device its role and says which start offline.
func draw(o Options) ([]Role, []bool) {
	round := func(f float64) int { return min(o.N, int(f*float64(o.N)+0.5)) }
	r := mrand.New(mrand.NewPCG(o.Seed, 0x6b657973746f6e65))
	roles := make([]Role, o.N)
	perm := r.Perm(o.N)
	nFail, nSilent := round(o.Failing), round(o.Silent)
	for i, p := range perm {
		switch {
		case i < nFail:
			roles[p] = Failing
		case i < nFail+nSilent:
			roles[p] = Silent
		}
	}
	offline := make([]bool, o.N)
	for _, p := range r.Perm(o.N)[:round(o.Offline)] {
		offline[p] = true
	}
	return roles, offline
}

// storeDir picks the stores' folder; remove says it is the fleet's own.
func storeDir(tb testing.TB, dir string) (string, bool) {
	if dir != "" {
		return dir, false
	}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "keystone-fleetsim-"); err == nil {
			return d, true
		}
	}
	return tb.TempDir(), false
}

// openStores opens one store per device, a few at a time.
func (s *Sim) openStores() error {
	ids := make(chan string)
	errs := make(chan error, len(s.ids))
	var wg sync.WaitGroup
	for range openParallel {
		wg.Go(func() {
			for id := range ids {
				st, err := store.Open(s.life, filepath.Join(s.dir, id+".db"), store.WithReaders(1))
				if err != nil {
					errs <- fmt.Errorf("device %s: %w", id, err)
					continue
				}
				s.devices[id].st = st
			}
		})
	}
	for _, id := range s.ids {
		ids <- id
	}
	close(ids)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// connectAll starts the devices a few at a time and waits until each is
// connected.
func (s *Sim) connectAll(ids []string) error {
	work := make(chan string)
	errs := make(chan error, len(ids))
	var wg sync.WaitGroup
	for range min(startParallel, len(ids)) {
		wg.Go(func() {
			for id := range work {
				if err := s.connect(id); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// connect runs one device and waits until it is connected.
func (s *Sim) connect(id string) error {
	d := s.devices[id]
	if d == nil {
		return fmt.Errorf("no device %s in the fleet", id)
	}
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return nil
	}
	if s.life.Err() != nil {
		d.mu.Unlock()
		return errors.New("the fleet is stopped")
	}
	d.started = true
	ctx, cancel := context.WithCancel(s.life)
	d.cancel, d.done = cancel, make(chan struct{})
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		defer close(d.done)
		if err := d.dev.Run(ctx); err != nil {
			s.tb.Errorf("fleetsim: device %s: %v", id, err)
		}
	}()
	d.mu.Unlock()
	deadline := time.Now().Add(connectTimeout)
	for !d.dev.Connected() {
		if time.Now().After(deadline) {
			return fmt.Errorf("device %s not connected within %s", id, connectTimeout)
		}
		select {
		case <-d.done:
			return fmt.Errorf("device %s stopped before it connected", id)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// Connect brings an offline device online and returns once it is
// connected; a device already online is left as it is.
func (s *Sim) Connect(id string) error { return s.connect(id) }

// Disconnect takes a device offline cleanly: its offline state is
// published and the broker keeps its session. A device runs once, so it
// does not come back: Connect leaves it offline.
func (s *Sim) Disconnect(id string) {
	d := s.devices[id]
	if d == nil {
		return
	}
	d.mu.Lock()
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Stop disconnects every device cleanly, ends the stand-in engines and
// closes the stores. It is called when the test ends; calling it again
// does nothing.
func (s *Sim) Stop() {
	s.stopOnce.Do(func() {
		s.end()
		s.running.Wait()
		for _, id := range s.ids {
			d := s.devices[id]
			if d.eng != nil {
				d.eng.wait()
			}
			if d.st != nil {
				_ = d.st.Close()
			}
		}
		if s.rmDir {
			_ = os.RemoveAll(s.dir)
		}
	})
}

// Devices returns every device id, in order.
func (s *Sim) Devices() []string { return slices.Clone(s.ids) }

// WithRole returns the ids of the devices that have role r, in order.
func (s *Sim) WithRole(r Role) []string {
	var out []string
	for _, id := range s.ids {
		if s.devices[id].role == r {
			out = append(out, id)
		}
	}
	return out
}

// Role returns a device's role.
func (s *Sim) Role(id string) Role {
	if d := s.devices[id]; d != nil {
		return d.role
	}
	return Succeeding
}

// Offline returns the ids of the devices Start left offline, in order.
func (s *Sim) Offline() []string {
	var out []string
	for _, id := range s.ids {
		if s.devices[id].offline {
			out = append(out, id)
		}
	}
	return out
}

// Connected reports whether a device is connected to the broker now.
func (s *Sim) Connected(id string) bool {
	d := s.devices[id]
	return d != nil && d.dev.Connected()
}

// Counts returns the fleet's deployment counters.
func (s *Sim) Counts() Counts {
	return Counts{Received: s.count.received.Load(), Succeeded: s.count.succeeded.Load(),
		Failed: s.count.failed.Load(), Canceled: s.count.canceled.Load()}
}

// SignKey is the key the devices trust: sign jobs for them with it.
func (s *Sim) SignKey() ed25519.PrivateKey { return s.key }

// Components returns a device's component set as its statuses and state
// report it.
func (s *Sim) Components(id string) []message.ComponentStatus {
	if d := s.devices[id]; d != nil {
		return d.eng.components()
	}
	return nil
}

// ControllerConfig is a controller configuration for the fleet's broker:
// the controller identity, the topic prefix and the fleet's sign key; the
// caller adds its callbacks, client id and clock.
func (s *Sim) ControllerConfig(tb testing.TB) controller.Config {
	tb.Helper()
	id := s.broker.ControllerIdentity(tb)
	return controller.Config{BrokerURL: s.broker.URL, CAFile: id.CAFile, CertFile: id.CertFile, KeyFile: id.KeyFile,
		TopicPrefix: s.broker.Prefix, SignKey: s.key}
}

// Job returns a deployment job for a device, created now and expiring in
// an hour, whose manifest names one component at version; the controller
// signs it when it publishes it.
func Job(deviceID, jobID, component, version string) message.Job {
	now := time.Now()
	return message.Job{JobID: jobID, Kind: message.KindDeployment, DeviceID: deviceID, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		Deployment: &message.DeploymentJob{Manifest: fmt.Sprintf("format = 1\n\n[[components]]\nname = %q\nversion = %q\n", component, version)}}
}
