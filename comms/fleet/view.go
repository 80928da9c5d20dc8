package fleet

// Summary is a rollout's status as `fleet status` shows it.
type Summary struct {
	ID     string `json:"id"`
	Phase  Phase  `json:"phase"`
	Reason string `json:"reason,omitempty"` // why it halted, was paused or canceled
	// Ring is the ring in progress (0-based); -1 before the start, and
	// len(Rings) once every ring finished.
	Ring   int             `json:"ring"`
	Counts map[Outcome]int `json:"counts"` // over every device; outcomes with none are absent
	Rings  []RingSummary   `json:"rings"`
	// Failing lists the devices that failed, were rejected or timed out,
	// in rank order.
	Failing []Failing `json:"failing"`
}

// RingSummary is one ring's share of a Summary.
type RingSummary struct {
	Fraction float64         `json:"fraction"` // the ring's cumulative fraction of the targets
	Devices  int             `json:"devices"`
	Counts   map[Outcome]int `json:"counts"`
}

// Failing is one failing device with why.
type Failing struct {
	Device    string  `json:"device_id"`
	Ring      int     `json:"ring"`
	Outcome   Outcome `json:"outcome"`
	ErrorCode string  `json:"error_code,omitempty"`
	Detail    string  `json:"detail,omitempty"`
	Late      string  `json:"late,omitempty"` // a final status that came after it timed out
}

// Summary returns the rollout's status: counts per outcome overall and
// per ring, and the failing devices.
func (c *Core) Summary() Summary {
	s := Summary{ID: c.s.Config.ID, Phase: c.s.Phase, Reason: c.s.Reason, Ring: c.s.Ring,
		Counts: map[Outcome]int{}, Failing: []Failing{}}
	for _, f := range c.s.Config.Rings {
		s.Rings = append(s.Rings, RingSummary{Fraction: f, Counts: map[Outcome]int{}})
	}
	for _, d := range c.s.Devices {
		s.Counts[d.Outcome]++
		s.Rings[d.Ring].Devices++
		s.Rings[d.Ring].Counts[d.Outcome]++
		if d.Outcome.failure() {
			s.Failing = append(s.Failing, Failing{Device: d.ID, Ring: d.Ring, Outcome: d.Outcome,
				ErrorCode: d.ErrorCode, Detail: d.Detail, Late: d.Late})
		}
	}
	return s
}
