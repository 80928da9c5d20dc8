package comms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// busBuffer is how many bus events each of the device's subscriptions holds
// before the bus drops them for it.
const busBuffer = 512

// receiveMaximum is how many messages the broker may send the device
// before it acknowledged them: jobs, one at a time in practice. The MQTT
// library keeps a queue of that many for its handler, 0.5 MiB at the
// protocol's default of 65,535.
const receiveMaximum = 32

// goodbyeTimeout bounds the clean end of Run: the offline state published
// (when connected) and the DISCONNECT sent.
const goodbyeTimeout = 3 * time.Second

// Device is the device side of MQTT: it takes jobs from the broker, runs
// them through the Deployer, and reports statuses, state and events. Make
// one with New and serve with Run, once.
type Device struct {
	cfg       *settings
	log       *slog.Logger
	reconnect reconnectPolicy

	started        atomic.Bool
	connected      atomic.Bool
	sessionPresent atomic.Bool // the last CONNACK's, for tests
	// connectedBefore: a connection came up before (a reconnect follows).
	connectedBefore atomic.Bool
	// resendAfter (Unix ns) holds the outbox back after the broker lost
	// its sessions; see ResendGrace.
	resendAfter atomic.Int64
	metrics     chan pluginMetrics // PublishMetrics to metricsLoop
	// holdConnect makes every connection attempt fail while set: fault
	// injection for tests that must order the device's return after
	// something else.
	holdConnect atomic.Bool

	jobs      *jobQueue
	wake      chan struct{} // the outbox publisher's doorbell
	stateNow  chan struct{} // a fresh state, at once (connection up)
	stateSoon chan struct{} // a fresh state, within the rate limit
	subs      sync.WaitGroup

	mu          sync.Mutex
	life        context.Context // Run's, until the connection is closed
	cm          *autopaho.ConnectionManager
	conn        context.Context // the current connection; nil while down
	connCancel  context.CancelFunc
	connChanged chan struct{} // closed and replaced when conn changes
}

// New checks cfg and loads the TLS material; it does no network I/O. Its
// errors name the setting or file at fault.
func New(cfg Config) (*Device, error) {
	s, err := cfg.settle()
	if err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	d := &Device{cfg: s, log: s.Logger.With("broker", s.url.Redacted(), "device_id", s.DeviceID),
		reconnect: defaultReconnect, jobs: newJobQueue(),
		wake: make(chan struct{}, 1), stateNow: make(chan struct{}, 1), stateSoon: make(chan struct{}, 1),
		connChanged: make(chan struct{}), metrics: make(chan pluginMetrics, metricsBuffer)}
	if cn := s.commonName(); cn != "" && cn != s.DeviceID {
		d.log.Warn("the client certificate's common name is not the device id: a broker that pins devices to their topics by it will refuse this device's messages",
			"common_name", cn, "cert_file", s.CertFile)
	}
	if s.Keyring == nil || s.Keyring.Len() == 0 {
		d.log.Warn("no trusted keys: every job will be rejected as SIGNATURE_INVALID")
	}
	if s.url.Scheme == "mqtt" {
		d.log.Warn("insecure: the broker connection uses no TLS; anyone on the path can read and forge messages")
	}
	return d, nil
}

// Connected reports whether the device is connected to the broker now.
func (d *Device) Connected() bool { return d.connected.Load() }

// Run serves until ctx ends, then disconnects cleanly and returns nil. It
// first reads the jobs a previous run left unfinished (an error doing that
// is returned), then connects in the background, retrying with a growing
// delay while the broker cannot be reached (each failure a warning: the
// agent supervises meanwhile), resumes those jobs and takes new ones.
//
// On every connection it subscribes to its jobs and publishes a fresh
// retained state; the broker publishes the retained will (online false)
// only if the connection is lost uncleanly. At the end it publishes the
// offline state itself when it can, within a few seconds. Run may be called
// once.
func (d *Device) Run(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return errors.New("mqtt: the device is already running")
	}
	resume, err := d.cfg.Store.UnfinishedJobs(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("mqtt: read the unfinished jobs: %w", err)
	}
	// The connection outlives ctx by the goodbye.
	life, endLife := context.WithCancel(context.WithoutCancel(ctx))
	defer endLife()
	d.mu.Lock()
	d.life = life
	d.mu.Unlock()

	work, stopWork := context.WithCancel(ctx)
	defer stopWork()
	// Subscribed before anything is submitted, so that no progress of a
	// deployment this device submits is missed.
	deployments := d.cfg.Bus.Subscribe(work, busBuffer)
	transitions := d.cfg.Bus.Subscribe(work, busBuffer)
	var workers sync.WaitGroup
	workers.Go(func() { newWorker(d).run(work, deployments, resume) })
	workers.Go(func() { d.stateLoop(work, transitions) })
	workers.Go(func() { d.metricsLoop(work) })
	drain := make(chan struct{})
	published := make(chan struct{})
	go func() {
		defer close(published)
		d.publishLoop(life, drain)
	}()

	cm, err := autopaho.NewConnection(life, d.clientConfig())
	if err != nil {
		stopWork()
		workers.Wait()
		endLife()
		<-published
		return fmt.Errorf("mqtt: %w", err)
	}
	d.mu.Lock()
	d.cm = cm
	d.mu.Unlock()

	<-ctx.Done()
	stopWork()
	workers.Wait()
	d.goodbye(life, cm, drain, published)
	endLife()
	<-published
	<-cm.Done() // no connection comes up any more
	d.subs.Wait()
	return nil
}

// goodbye publishes the offline state when connected and disconnects
// cleanly, so that the broker drops the will.
func (d *Device) goodbye(life context.Context, cm *autopaho.ConnectionManager, drain chan struct{}, published <-chan struct{}) {
	ctx, cancel := context.WithTimeout(life, goodbyeTimeout)
	defer cancel()
	if err := d.enqueueState(ctx, false); err != nil {
		d.log.Warn("record the offline state", "error", err)
	}
	close(drain)
	select {
	case <-published:
	case <-ctx.Done():
	}
	if err := cm.Disconnect(ctx); err != nil {
		d.log.Warn("disconnect from the MQTT broker", "error", err)
	}
	d.connected.Store(false)
	d.setConn(nil, false)
	d.log.Info("disconnected from the MQTT broker")
}

// clientConfig is the autopaho configuration: mTLS, a persistent session
// (never a clean start), the will built afresh at every connection, and
// the job handler in the client configuration, where it survives
// reconnects.
func (d *Device) clientConfig() autopaho.ClientConfig {
	s := d.cfg
	return autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{s.url},
		TlsCfg:                        s.tls,
		KeepAlive:                     uint16(keepAlive / time.Second),
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(min(s.SessionExpiry/time.Second, math.MaxUint32)),
		ReconnectBackoff:              d.reconnect.backoff(),
		ConnectTimeout:                10 * time.Second,
		ConnectPacketBuilder:          d.connectPacket,
		OnConnectionUp:                d.connectionUp,
		OnConnectionDown:              d.connectionDown,
		OnConnectError:                d.connectError,
		Errors:                        pahoLog{d.log},
		PahoErrors:                    pahoLog{d.log},
		ClientConfig: paho.ClientConfig{
			ClientID:          s.DeviceID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){d.received},
		},
	}
}

// errConnectHeld is the failure of a connection attempt held by a test.
var errConnectHeld = errors.New("connection attempts are held")

// connectPacket completes the CONNECT of each attempt with the will: the
// device's state, offline, as it is now. A will cannot change while the
// connection lasts, so the one the broker publishes lists the components
// as they were when the connection was made.
func (d *Device) connectPacket(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
	if d.holdConnect.Load() {
		return nil, errConnectHeld
	}
	ctx, cancel := context.WithTimeout(d.lifeCtx(), 5*time.Second)
	defer cancel()
	will, err := d.stateMessage(ctx, d.cfg.Store.GetValue, false)
	if err != nil {
		return nil, fmt.Errorf("build the will: %w", err)
	}
	cp.WillMessage = &paho.WillMessage{Retain: true, QoS: 1, Topic: d.cfg.topics.State(), Payload: will}
	cp.WillProperties = &paho.WillProperties{}
	if cp.Properties == nil {
		cp.Properties = &paho.ConnectProperties{}
	}
	recv := uint16(receiveMaximum)
	cp.Properties.ReceiveMaximum = &recv
	return cp, nil
}

// connectionUp must not block: the subscription runs in its own goroutine
// and the state is left to the state loop. The subscription is made on
// every connection, whatever the broker says of the session: a broker that
// lost its state lost the subscription too.
func (d *Device) connectionUp(cm *autopaho.ConnectionManager, ca *paho.Connack) {
	d.log.Info("connected to the MQTT broker", "session_present", ca.SessionPresent)
	if !ca.SessionPresent && d.connectedBefore.Load() {
		// The broker lost its sessions: so did the controller, whose
		// subscription to our statuses is gone until it reconnects.
		// Statuses sent before that would reach nobody.
		d.resendAfter.Store(time.Now().Add(ResendGrace).UnixNano())
		d.log.Warn("the MQTT broker lost this device's session; waiting before sending the outbox again", "grace", ResendGrace)
	}
	d.connectedBefore.Store(true)
	d.sessionPresent.Store(ca.SessionPresent)
	d.setConn(cm, true)
	d.connected.Store(true)
	signal(d.stateNow)
	life := d.lifeCtx()
	d.subs.Go(func() {
		if err := d.subscribe(life, cm); err != nil && life.Err() == nil {
			d.log.Error("subscribe to the device's jobs", "error", err)
		}
	})
}

func (d *Device) connectionDown() bool {
	d.connected.Store(false)
	d.setConn(nil, false)
	if d.lifeCtx().Err() == nil {
		d.log.Warn("connection to the MQTT broker lost; reconnecting")
	}
	return true
}

func (d *Device) connectError(err error) {
	if errors.Is(err, errConnectHeld) {
		return
	}
	var refused *autopaho.ConnackError
	if errors.As(err, &refused) {
		d.log.Warn("the MQTT broker refused the connection; retrying", "reason_code", fmt.Sprintf("%#x", refused.ReasonCode),
			"reason", connackReason(refused.ReasonCode, refused.Reason))
		return
	}
	d.log.Warn("cannot reach the MQTT broker; retrying", "error", err)
}

// setConn records that a connection came up (cm) or went down.
func (d *Device) setConn(cm *autopaho.ConnectionManager, up bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.connCancel != nil {
		d.connCancel()
	}
	d.conn, d.connCancel = nil, nil
	if up {
		d.cm = cm
		d.conn, d.connCancel = context.WithCancel(d.life)
	}
	close(d.connChanged)
	d.connChanged = make(chan struct{})
}

// connection returns the current connection (nil while down), its manager,
// and a channel closed when that changes.
func (d *Device) connection() (context.Context, *autopaho.ConnectionManager, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil && d.conn.Err() != nil {
		return nil, d.cm, d.connChanged
	}
	return d.conn, d.cm, d.connChanged
}

// lifeCtx is Run's life: it ends once the connection is closed. The
// connection's callbacks, which use it, run only within Run.
func (d *Device) lifeCtx() context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.life
}

// received routes one message. A job's document is recorded before this
// returns, which is when the broker gets its acknowledgement.
func (d *Device) received(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	if p.Topic != d.cfg.topics.JobNotify() {
		d.log.Debug("message on a topic the device does not read", "topic", p.Topic)
		return true, nil
	}
	if len(p.Payload) == 0 {
		d.log.Debug("the retained job was cleared")
		return true, nil
	}
	if err := d.intake(d.lifeCtx(), p.Payload, p.Retain); err != nil {
		d.log.Error("job not taken; the broker's retained copy is read again at the next connection", "error", err)
	}
	return true, nil
}

// subscribe subscribes to the device's jobs. A refusal the broker may lift
// by itself (a packet identifier still in use by a session it restored, a
// quota) is tried again a few times on the same connection.
func (d *Device) subscribe(ctx context.Context, cm *autopaho.ConnectionManager) error {
	topic := d.cfg.topics.JobNotify()
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		// Retained messages are delivered at every subscription (retain
		// handling 0): a job recorded nowhere because the store failed is
		// read again.
		sa, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
		if sa != nil && len(sa.Reasons) == 1 && sa.Reasons[0] >= 0x80 {
			code := sa.Reasons[0]
			if !transientRefusal(code) || attempt == subscribeTries {
				return fmt.Errorf("the broker refused the subscription to %s (reason code %#x): is this device allowed on %s/%s/#?",
					topic, code, d.cfg.TopicPrefix, d.cfg.DeviceID)
			}
		} else if err != nil {
			return fmt.Errorf("subscribe to %s: %w", topic, err)
		} else {
			d.log.Debug("subscribed", "topic", topic)
			return nil
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay *= 2
	}
}

// subscribeTries bounds the tries of a subscription refused for now.
const subscribeTries = 6

// transientRefusal reports a SUBACK or PUBACK reason code that is not about
// this identity's rights: unspecified (0x80), implementation specific
// (0x83), packet identifier in use (0x91; mochi reuses the identifiers of
// messages it re-sends from a restored session) or quota exceeded (0x97).
func transientRefusal(code byte) bool {
	switch code {
	case 0x80, 0x83, 0x91, 0x97:
		return true
	}
	return false
}

// signal rings a doorbell channel of capacity one without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// pahoLog passes the MQTT library's messages on at debug level: the
// connection events that matter are logged by the Device itself.
type pahoLog struct{ log *slog.Logger }

func (l pahoLog) Println(v ...any) { l.log.Debug(fmt.Sprint(v...)) }

func (l pahoLog) Printf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
