package mqtttest_test

import (
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/internal/mqtttest"
)

// expect fails the test unless the next message c receives is on topic
// with payload. A message that should never arrive is caught this way:
// the publisher sends it first and a permitted one after, and a broker
// delivers one publisher's messages to a subscriber in order, so the
// forbidden one would be the first to arrive.
func expect(t *testing.T, c *mqtttest.Conn, topic, payload string) mqtttest.Message {
	t.Helper()
	m := c.Next(t)
	if m.Topic != topic || string(m.Payload) != payload {
		t.Fatalf("received %s %q, want %s %q", m.Topic, m.Payload, topic, payload)
	}
	return m
}

func TestDeviceUsesItsOwnTopics(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		b := mqtttest.Start(t, mqtttest.Options{Kind: kind})
		if b.Kind != kind || !strings.HasPrefix(b.URL, "mqtts://127.0.0.1:") {
			t.Fatalf("broker %s at %s", b.Kind, b.URL)
		}
		dev := b.Dial(t, b.Device(t, "pos-12"), mqtttest.DialOptions{})
		dev.AwaitUp(t)
		dev.MustSubscribe(t, "keystone/pos-12/#", 1)
		dev.MustPublish(t, "keystone/pos-12/state", []byte(`{"online":true}`), 1, false)
		m := expect(t, dev, "keystone/pos-12/state", `{"online":true}`)
		if m.QoS != 1 {
			t.Errorf("QoS %d, want 1", m.QoS)
		}
	})
}

func TestDeviceCannotReachAnotherDevicesTopics(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		b := mqtttest.Start(t, mqtttest.Options{Kind: kind})
		ctl := b.Dial(t, b.ControllerIdentity(t), mqtttest.DialOptions{})
		dev := b.Dial(t, b.Device(t, "pos-12"), mqtttest.DialOptions{})
		ctl.AwaitUp(t)
		dev.AwaitUp(t)
		ctl.MustSubscribe(t, "keystone/#", 1)
		dev.MustSubscribe(t, "keystone/pos-12/#", 1)

		// Reading: mochi refuses these subscriptions; mosquitto grants them
		// and checks every message against the access list before
		// delivering it. Either way no message of pos-13 may reach pos-12.
		for _, filter := range []string{"keystone/pos-13/#", "keystone/+/jobs/notify", "keystone/#", "#", "$share/g/keystone/pos-13/#"} {
			code := dev.Subscribe(t, filter, 1)
			if kind == mqtttest.KindMochi && code != 0x87 {
				t.Errorf("mochi granted pos-12 %s (reason code %#x)", filter, code)
			}
		}
		ctl.MustPublish(t, "keystone/pos-13/jobs/notify", []byte("for pos-13"), 1, false)
		ctl.MustPublish(t, "keystone/pos-12/jobs/notify", []byte("for pos-12"), 1, false)
		expect(t, dev, "keystone/pos-12/jobs/notify", "for pos-12")
		// The controller sees its own two messages.
		expect(t, ctl, "keystone/pos-13/jobs/notify", "for pos-13")
		expect(t, ctl, "keystone/pos-12/jobs/notify", "for pos-12")

		// Writing: pos-12 forging pos-13's status is refused (PUBACK "not
		// authorized") and not forwarded.
		err := dev.Publish(t, "keystone/pos-13/jobs/j1/status", []byte("forged"), 1, false)
		if err == nil || !strings.Contains(err.Error(), "not authorized") {
			t.Errorf("publishing on pos-13's topic: %v, want a refusal", err)
		}
		dev.MustPublish(t, "keystone/pos-12/jobs/j1/status", []byte("own"), 1, false)
		expect(t, ctl, "keystone/pos-12/jobs/j1/status", "own")
	})
}

func TestClientsWithoutATrustedCertificateAreRefused(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		b := mqtttest.Start(t, mqtttest.Options{Kind: kind})
		// What each broker logs about the refused handshake.
		why := map[string][2]string{
			mqtttest.KindMosquitto: {"peer did not return a certificate", "certificate verify failed"},
			mqtttest.KindMochi:     {"didn't provide a certificate", "signed by unknown authority"},
		}[kind]
		for i, id := range []*mqtttest.Identity{b.NoCertificate(t), b.Foreign(t, "pos-12")} {
			c := b.Dial(t, id, mqtttest.DialOptions{ClientID: "pos-12"})
			err := c.ConnectError(t)
			if c.Connected() {
				t.Fatalf("%s: connected", why[i])
			}
			c.Close()
			t.Logf("refused: %v", err)
			b.WaitLog(t, why[i])
		}
		// The same broker takes a device with a good certificate.
		good := b.Dial(t, b.Device(t, "pos-12"), mqtttest.DialOptions{})
		good.AwaitUp(t)
	})
}

func TestControllerReadsAndWritesEveryDevice(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		b := mqtttest.Start(t, mqtttest.Options{Kind: kind})
		ctl := b.Dial(t, b.ControllerIdentity(t), mqtttest.DialOptions{})
		ctl.AwaitUp(t)
		ctl.MustSubscribe(t, "keystone/+/state", 1)
		ctl.MustSubscribe(t, "$share/keystone-fleet/keystone/+/jobs/+/status", 1)
		for _, id := range []string{"pos-12", "pos-13"} {
			dev := b.Dial(t, b.Device(t, id), mqtttest.DialOptions{})
			dev.AwaitUp(t)
			dev.MustSubscribe(t, "keystone/"+id+"/jobs/notify", 1)
			ctl.MustPublish(t, "keystone/"+id+"/jobs/notify", []byte("job for "+id), 1, true)
			expect(t, dev, "keystone/"+id+"/jobs/notify", "job for "+id)
			dev.MustPublish(t, "keystone/"+id+"/state", []byte(id+" up"), 1, true)
			expect(t, ctl, "keystone/"+id+"/state", id+" up")
			dev.MustPublish(t, "keystone/"+id+"/jobs/j1/status", []byte(id+" done"), 1, false)
			expect(t, ctl, "keystone/"+id+"/jobs/j1/status", id+" done")
		}
	})
}

func TestRestartKeepsOrLosesTheSession(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		b := mqtttest.Start(t, mqtttest.Options{Kind: kind, Persistence: true})
		ctl := b.Dial(t, b.ControllerIdentity(t), mqtttest.DialOptions{})
		ctl.AwaitUp(t)
		devID := b.Device(t, "pos-12")
		persistent := mqtttest.DialOptions{Persistent: true}

		dev := b.Dial(t, devID, persistent)
		if ca := dev.AwaitUp(t); ca.SessionPresent {
			t.Fatal("a first connection found a session")
		}
		dev.MustSubscribe(t, "keystone/pos-12/#", 1)
		dev.Close() // offline; its session stays

		ctl.MustPublish(t, "keystone/pos-12/jobs/notify", []byte("job-1"), 1, true)
		ctl.MustPublish(t, "keystone/pos-12/events", []byte("queued"), 1, false)
		b.Restart(t)
		ctl.AwaitUp(t)

		dev = b.Dial(t, devID, persistent)
		if ca := dev.AwaitUp(t); !ca.SessionPresent {
			t.Fatal("the session did not survive a restart with persistence")
		}
		// The session still holds the subscription and the messages queued
		// while the device was offline. mosquitto keeps their order; mochi
		// re-sends a session's queue sorted by the second each message was
		// made in, so two of the same second may come in either order.
		got := []mqtttest.Message{dev.Next(t), dev.Next(t)}
		if kind == mqtttest.KindMochi && got[0].Topic == "keystone/pos-12/events" {
			got[0], got[1] = got[1], got[0]
		}
		for i, want := range [][2]string{{"keystone/pos-12/jobs/notify", "job-1"}, {"keystone/pos-12/events", "queued"}} {
			if got[i].Topic != want[0] || string(got[i].Payload) != want[1] {
				t.Fatalf("queued message %d: %s %q, want %s %q", i, got[i].Topic, got[i].Payload, want[0], want[1])
			}
		}
		ctl.MustPublish(t, "keystone/pos-12/events", []byte("live"), 1, false)
		expect(t, dev, "keystone/pos-12/events", "live")
		// The retained job survived too: a new subscriber gets it.
		reader := b.Dial(t, devID, mqtttest.DialOptions{ClientID: "pos-12-reader"})
		reader.AwaitUp(t)
		reader.MustSubscribe(t, "keystone/pos-12/jobs/notify", 1)
		if m := expect(t, reader, "keystone/pos-12/jobs/notify", "job-1"); !m.Retain {
			t.Error("the job came back without the retain flag")
		}
		reader.Close()

		b.RestartEmpty(t)
		if ca := dev.AwaitUp(t); ca.SessionPresent {
			t.Fatal("the session survived a restart with the persistence deleted")
		}
		ctl.AwaitUp(t)
		// Nothing retained and no subscription: the device, subscribing
		// again, gets only what is published from now on.
		dev.MustSubscribe(t, "keystone/pos-12/#", 1)
		ctl.MustPublish(t, "keystone/pos-12/events", []byte("after"), 1, false)
		expect(t, dev, "keystone/pos-12/events", "after")
	})
}

func TestRestartWithoutPersistenceStartsEmpty(t *testing.T) {
	mqtttest.Each(t, func(t *testing.T, kind string) {
		b := mqtttest.Start(t, mqtttest.Options{Kind: kind})
		url := b.URL
		ctl := b.Dial(t, b.ControllerIdentity(t), mqtttest.DialOptions{Persistent: true})
		ctl.AwaitUp(t)
		ctl.MustSubscribe(t, "keystone/#", 1)
		ctl.MustPublish(t, "keystone/pos-12/jobs/notify", []byte("job-1"), 1, true)
		expect(t, ctl, "keystone/pos-12/jobs/notify", "job-1")

		b.Stop(t)
		b.Restart(t)
		if b.URL != url {
			t.Fatalf("restarted at %s, was %s", b.URL, url)
		}
		if ca := ctl.AwaitUp(t); ca.SessionPresent {
			t.Fatal("a broker without persistence kept a session")
		}
		ctl.MustSubscribe(t, "keystone/#", 1)
		ctl.MustPublish(t, "keystone/pos-12/events", []byte("after"), 1, false)
		expect(t, ctl, "keystone/pos-12/events", "after")
	})
}
