package comms

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/comms/controller"
	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/internal/mqtttest"
	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/store"
	"github.com/keystone-edge/keystone/supervisor/deploy"
	"github.com/keystone-edge/keystone/supervisor/events"
)

// outboxBurst is how many status messages one round of the outbox
// benchmark sends.
const outboxBurst = 500

// noDeployer is the Deployer of a device that is only asked to publish:
// the outbox benchmark sends no job.
type noDeployer struct{}

var errNoJobs = errors.New("this device takes no jobs")

func (noDeployer) Submit(context.Context, deploy.Request) (deploy.Accepted, error) {
	return deploy.Accepted{}, errNoJobs
}
func (noDeployer) Get(context.Context, string) (deploy.Deployment, error) {
	return deploy.Deployment{}, errNoJobs
}
func (noDeployer) Cancel(context.Context, string) error { return errNoJobs }

// BenchmarkOutbox measures status messages per second through the store's
// outbox to a real broker, each removed after its PUBACK, until the
// controller has them all; and, as the anchor in the same run, a bare paho
// client publishing the same messages at QoS 1 one after another.
func BenchmarkOutbox(b *testing.B) {
	br := mqtttest.Start(b, mqtttest.Options{})
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ring, _ := sign.NewKeyring(priv.Public().(ed25519.PublicKey))
	var received atomic.Int64
	cid := br.ControllerIdentity(b)
	ctl, err := controller.Connect(context.Background(), controller.Config{
		BrokerURL: br.URL, CAFile: cid.CAFile, CertFile: cid.CertFile, KeyFile: cid.KeyFile, SignKey: priv,
		OnStatus: func(message.JobStatus) { received.Add(1) },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer ctl.Close(context.Background())
	st, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "keystone.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	id := br.Device(b, "bench-1")
	dev, err := New(Config{DeviceID: "bench-1", BrokerURL: br.URL, CAFile: id.CAFile, CertFile: id.CertFile, KeyFile: id.KeyFile,
		Keyring: ring, Store: st, Deployer: noDeployer{}, Bus: events.New(nil),
		Components: func() []message.ComponentStatus { return nil }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go dev.Run(ctx)
	topics := message.Topics{Prefix: message.DefaultTopicPrefix, DeviceID: "bench-1"}
	payload := func(i int) []byte {
		p, _ := json.Marshal(message.JobStatus{DeviceID: "bench-1", JobID: "bench", Status: message.StatusInProgress, Step: fmt.Sprint(i)})
		return p
	}
	waitFor := func(n int64) {
		deadline := time.Now().Add(2 * time.Minute)
		for received.Load() < n {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d statuses arrived", received.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	var outboxTime, rawTime time.Duration
	var sent int64
	raw := br.Dial(b, br.Device(b, "bench-2"), mqtttest.DialOptions{})
	defer raw.Close()
	raw.AwaitUp(b)
	rawTopics := message.Topics{Prefix: message.DefaultTopicPrefix, DeviceID: "bench-2"}
	for b.Loop() {
		start := time.Now()
		for i := range outboxBurst {
			if _, err := st.EnqueueOutbox(ctx, store.Message{Topic: topics.JobStatus("bench"), Payload: payload(i), QoS: 1}); err != nil {
				b.Fatal(err)
			}
			dev.pokeOutbox()
		}
		sent += outboxBurst
		waitFor(sent)
		outboxTime += time.Since(start)

		start = time.Now()
		for i := range outboxBurst {
			p, _ := json.Marshal(message.JobStatus{DeviceID: "bench-2", JobID: "bench", Seq: uint64(sent) + uint64(i) + 1, Status: message.StatusInProgress})
			raw.MustPublish(b, rawTopics.JobStatus("bench"), p, 1, false)
		}
		sent += outboxBurst
		waitFor(sent)
		rawTime += time.Since(start)
	}
	perSec := func(d time.Duration) float64 { return float64(b.N*outboxBurst) / d.Seconds() }
	b.ReportMetric(perSec(outboxTime), "outbox-msgs/s")
	b.ReportMetric(perSec(rawTime), "raw-paho-msgs/s")
	b.ReportMetric(perSec(outboxTime)/perSec(rawTime), "outbox/raw")
}
