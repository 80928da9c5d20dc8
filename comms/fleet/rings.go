package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"slices"
	"strings"
)

// Rank orders a rollout's devices: the hex sha256 of rolloutID + "/" +
// deviceID. It depends on nothing else, so every controller and every
// restart ranks the same devices the same way.
func Rank(rolloutID, deviceID string) string {
	sum := sha256.Sum256([]byte(rolloutID + "/" + deviceID))
	return hex.EncodeToString(sum[:])
}

// AssignRings splits devices into len(fractions) rings: ordered by Rank,
// ring k holds those whose place falls under fractions[k] of the total
// (rounded up) and not under an earlier ring's, with at least one device
// per ring while devices are left. fractions must be increasing and end
// at 1 (New checks this). The devices come back in rank order with their
// rings.
func AssignRings(rolloutID string, devices []string, fractions []float64) (ordered []string, rings []int) {
	type ranked struct{ id, rank string }
	rs := make([]ranked, len(devices))
	for i, d := range devices {
		rs[i] = ranked{d, Rank(rolloutID, d)}
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if c := strings.Compare(a.rank, b.rank); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	n := len(rs)
	ordered = make([]string, n)
	rings = make([]int, n)
	start := 0
	for k, f := range fractions {
		// The epsilon keeps 0.1*20 (2.0000000000000004) at 2.
		end := int(math.Ceil(f*float64(n) - 1e-9))
		if k == len(fractions)-1 {
			end = n
		}
		end = max(end, start+1)
		end = min(end, n)
		for i := start; i < end; i++ {
			ordered[i], rings[i] = rs[i].id, k
		}
		start = end
	}
	return ordered, rings
}
