package fleet

// Summary is a rollout's status as `fleet status` shows it.
type Summary struct {
	ID     string
	Phase  Phase
	Reason string // why it halted, was paused or canceled
	// Ring is the ring in progress (0-based); -1 before the start, and
	// len(Rings) once every ring finished.
	Ring   int
	Counts map[Outcome]int // over every device; outcomes with none are absent
	Rings  []RingSummary
	// Failing lists the devices that failed, were rejected or timed out,
	// in rank order.
	Failing []Failing
}

// RingSummary is one ring's share of a Summary.
type RingSummary struct {
	Fraction float64 // the ring's cumulative fraction of the targets
	Devices  int
	Counts   map[Outcome]int
}

// Failing is one failing device with why.
type Failing struct {
	Device    string
	Ring      int
	Outcome   Outcome
	ErrorCode string
	Detail    string
	Late      string // a final status that came after it timed out
}

// Summary returns the rollout's status: counts per outcome overall and
// per ring, and the failing devices.
func (c *Core) Summary() Summary {
	s := Summary{ID: c.s.Config.ID, Phase: c.s.Phase, Reason: c.s.Reason, Ring: c.s.Ring,
		Counts: map[Outcome]int{}}
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
