package comms

import (
	"context"
	"encoding/json"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/keystone-edge/keystone/supervisor/events"
)

// Component transitions go out on …/events at QoS 0, at most eventsPerSecond
// on average with bursts of eventsBurst; the excess is dropped and counted.
const (
	eventsPerSecond = 20
	eventsBurst     = 20
)

// limiter is a token bucket: rate tokens a second, at most burst held.
// Time is an input; the zero value allows nothing.
type limiter struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func newLimiter(rate, burst float64) *limiter {
	return &limiter{rate: rate, burst: burst, tokens: burst}
}

// allow takes a token at now and reports whether there was one.
func (l *limiter) allow(now time.Time) bool {
	if !l.last.IsZero() && now.After(l.last) {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	if l.last.IsZero() || now.After(l.last) {
		l.last = now
	}
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// eventPublisher publishes transitions directly, not through the outbox:
// they are QoS 0 and worth nothing late. Owned by the state loop.
type eventPublisher struct {
	d       *Device
	limit   *limiter
	dropped uint64 // by the rate limit or the bus, since the last report
}

func newEventPublisher(d *Device) *eventPublisher {
	return &eventPublisher{d: d, limit: newLimiter(eventsPerSecond, eventsBurst)}
}

func (p *eventPublisher) publish(ctx context.Context, e events.Event) {
	p.dropped += e.Dropped
	if !p.limit.allow(time.Now()) {
		p.dropped++
		return
	}
	p.flush()
	conn, cm, _ := p.d.connection()
	if conn == nil {
		return // QoS 0: not kept for later
	}
	e.Dropped = 0
	body, err := json.Marshal(e)
	if err != nil {
		p.d.log.Debug("encode an event", "error", err)
		return
	}
	pubCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cm.Publish(pubCtx, &paho.Publish{Topic: p.d.cfg.topics.Events(), QoS: 0, Payload: body}); err != nil {
		p.d.log.Debug("publish an event", "error", err)
	}
}

// flush reports the events dropped since the last report.
func (p *eventPublisher) flush() {
	if p.dropped > 0 {
		p.d.log.Warn("component events not published: more than the rate limit allows", "dropped", p.dropped,
			"limit_per_second", eventsPerSecond)
		p.dropped = 0
	}
}

// pluginMetrics is one plugin run's values as …/metrics carries them.
type pluginMetrics struct {
	DeviceID  string    `json:"device_id"`
	Component string    `json:"component"`
	Metrics   any       `json:"metrics"`
	TS        time.Time `json:"ts"`
}

// metricsBuffer bounds the plugin runs waiting to be published.
const metricsBuffer = 16

// PublishMetrics publishes a plugin run's mapped values on …/metrics at
// QoS 0, when Config.PublishMetrics is set and the connection is up. It
// never blocks the caller (a plugin's schedule): past a few waiting runs,
// or while disconnected, values are dropped, since /metrics has them
// anyway.
func (d *Device) PublishMetrics(component string, metrics any) {
	if !d.cfg.PublishMetrics {
		return
	}
	select {
	case d.metrics <- pluginMetrics{DeviceID: d.cfg.DeviceID, Component: component, Metrics: metrics, TS: d.cfg.Now()}:
	default:
	}
}

// metricsLoop publishes what PublishMetrics queued until ctx ends.
func (d *Device) metricsLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-d.metrics:
			conn, cm, _ := d.connection()
			if conn == nil {
				continue
			}
			body, err := json.Marshal(m)
			if err != nil {
				d.log.Debug("encode plugin metrics", "error", err)
				continue
			}
			pubCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if _, err := cm.Publish(pubCtx, &paho.Publish{Topic: d.cfg.topics.Metrics(), QoS: 0, Payload: body}); err != nil {
				d.log.Debug("publish plugin metrics", "error", err)
			}
			cancel()
		}
	}
}
