package supervisor

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/process"
)

// ProcSampler measures component processes through /proc (gopsutil): the
// main process's resident memory, and its CPU use over the last sampling
// interval (0 until a process has been sampled twice). Samples closer than
// the interval give the previous figures, so frequent callers see stable
// values and cost nothing. Safe for concurrent use.
type ProcSampler struct {
	interval time.Duration
	now      func() time.Time
	mu       sync.Mutex
	procs    map[int]sampled
}

type sampled struct {
	p     *process.Process // keeps the previous CPU times
	ticks uint64           // start time, to tell a reused pid
	at    time.Time        // when last measured
	last  Usage
}

// NewProcSampler returns a sampler with no history that measures at most
// once per interval (0 means one second).
func NewProcSampler(interval time.Duration) *ProcSampler {
	if interval <= 0 {
		interval = time.Second
	}
	return &ProcSampler{interval: interval, now: time.Now, procs: map[int]sampled{}}
}

// Sample measures pids and forgets the pids it is no longer asked about.
func (s *ProcSampler) Sample(pids []int) map[int]Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]Usage, len(pids))
	keep := make(map[int]sampled, len(pids))
	for _, pid := range pids {
		ticks := procStartTicks(pid)
		if ticks == 0 {
			continue // gone
		}
		now := s.now()
		e, known := s.procs[pid]
		if known && e.ticks == ticks && now.Sub(e.at) < s.interval {
			keep[pid] = e
			out[pid] = e.last
			continue
		}
		if !known || e.ticks != ticks {
			p, err := process.NewProcess(int32(pid))
			if err != nil {
				continue
			}
			e = sampled{p: p, ticks: ticks}
		}
		mem, err := e.p.MemoryInfo()
		if err != nil {
			continue
		}
		cpu, err := e.p.Percent(0) // 0 the first time: it primes the delta
		if err != nil {
			cpu = 0
		}
		e.at, e.last = now, Usage{CPUPercent: cpu, RSSBytes: mem.RSS}
		keep[pid] = e
		out[pid] = e.last
	}
	s.procs = keep
	return out
}

// procStartTicks reads field 22 of /proc/PID/stat; 0 when the process is
// gone.
func procStartTicks(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}
