package comms

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// reconnectPolicy is how long the device waits between connection attempts:
// none before the first attempt after a loss, then exponentially longer
// with jitter, up to Max, forever.
type reconnectPolicy struct {
	Initial, Max time.Duration
}

var defaultReconnect = reconnectPolicy{Initial: time.Second, Max: time.Minute}

// backoff returns the delay before connection attempt n (counted from 0
// after every loss) for autopaho, which calls it from one goroutine.
func (p reconnectPolicy) backoff() func(attempt int) time.Duration {
	var b *backoff.ExponentialBackOff
	return func(attempt int) time.Duration {
		if attempt <= 0 || b == nil {
			b = backoff.NewExponentialBackOff(
				backoff.WithInitialInterval(p.Initial),
				backoff.WithMaxInterval(p.Max),
				backoff.WithMultiplier(2),
				backoff.WithRandomizationFactor(0.5),
				backoff.WithMaxElapsedTime(0), // never give up
			)
		}
		if attempt <= 0 {
			return 0
		}
		return b.NextBackOff()
	}
}
