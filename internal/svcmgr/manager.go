package svcmgr

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// Manager runs one service. It is safe for concurrent use; one goroutine
// (its actor) owns the service's state and acts on notifications, exits,
// timers and commands in turn, and the accessors read a copy.
type Manager struct {
	cfg        Config
	dir        string
	conn       *net.UnixConn
	notifyPath string
	out        outputs

	cmds     chan func()
	readable chan struct{} // datagrams wait on conn
	exits    chan exitEvent
	closeReq chan struct{}
	quit     chan struct{} // closed when the actor stops: senders give up
	done     chan struct{} // closed when everything is released
	reader   sync.WaitGroup
	once     sync.Once

	mu   sync.Mutex
	view view          // what the accessors return, written by the actor
	wake chan struct{} // closed and replaced at every change of view

	// Owned by the actor goroutine.
	a actor
}

// view is the part of the manager's state that tests read.
type view struct {
	state         State
	mainPID       int
	starts        int
	notifications []Notification
	ignored       []Notification
	exits         []Exit
	transitions   []Transition
	final         bool // nothing will change any more (failed, stopped, closed)
	closed        bool
}

// phase is the actor's finer state, after systemd's SERVICE_* states.
type phase int

const (
	phDead         phase = iota // inactive or failed; nothing pending
	phStart                     // SERVICE_START: waiting for READY=1
	phRunning                   // SERVICE_RUNNING
	phReloadSignal              // SERVICE_RELOAD_SIGNAL: SIGHUP sent, waiting for RELOADING=1
	phReloadNotify              // SERVICE_RELOAD_NOTIFY: waiting for READY=1
	phStopSigterm               // SIGTERM sent (or STOPPING=1), waiting for the exit
	phStopWatchdog              // WatchdogSignal sent, waiting for the exit
	phStopSigkill               // SIGKILL sent, waiting for the exit
	phAutoRestart               // waiting RestartSec
)

func (p phase) state() State {
	switch p {
	case phStart, phAutoRestart:
		return Activating
	case phRunning:
		return Active
	case phReloadSignal, phReloadNotify:
		return Reloading
	case phStopSigterm, phStopWatchdog, phStopSigkill:
		return Deactivating
	}
	return Inactive
}

// live: the phases in which the main process runs and talks.
func (p phase) live() bool {
	return p == phStart || p == phRunning || p == phReloadSignal || p == phReloadNotify
}

type actor struct {
	phase  phase
	main   *proc
	result Result // first failure of the current run

	timer         *time.Timer // the state's timeout, as systemd's timer_event_source
	timerDeadline time.Time
	wd            *time.Timer // the watchdog
	wdDeadline    time.Time
	wdOverride    time.Duration // WATCHDOG_USEC= of the current run
	wdOverrideSet bool

	stopping   bool // Stop or Close: no restart
	closing    bool
	reload     *reloadReq
	startTimes []time.Time // for the start limit
}

type reloadReq struct {
	beginMono uint64
	done      chan error
}

// Start starts the service as `systemctl start` would and returns without
// waiting for READY=1 (use WaitReady). It fails when Exec cannot be
// executed. The manager lives until Close or until ctx ends, which stops
// the service as Close does.
func Start(ctx context.Context, cfg Config) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "svcmgr-")
	if err != nil {
		return nil, fmt.Errorf("svcmgr: notify socket folder: %w", err)
	}
	conn, path, err := listenNotify(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("svcmgr: %w", err)
	}
	m := &Manager{
		cfg:        cfg,
		dir:        dir,
		conn:       conn,
		notifyPath: path,
		cmds:       make(chan func()),
		readable:   make(chan struct{}),
		exits:      make(chan exitEvent),
		closeReq:   make(chan struct{}),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		wake:       make(chan struct{}),
		view:       view{state: Inactive},
	}
	m.a.timer = stoppedTimer()
	m.a.wd = stoppedTimer()
	if err := m.startRun("start"); err != nil {
		m.a.timer.Stop()
		m.release()
		return nil, fmt.Errorf("svcmgr: start %s: %w", cfg.Exec, err)
	}
	m.reader.Add(1)
	go func() {
		defer m.reader.Done()
		watchNotify(conn, m.readable, m.quit)
	}()
	go m.run(ctx)
	return m, nil
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// run is the actor: the only goroutine that changes a.
func (m *Manager) run(ctx context.Context) {
	ctxDone, closeReq := ctx.Done(), m.closeReq
	for !(m.a.closing && m.a.main == nil) {
		select {
		case f := <-m.cmds:
			f()
		case <-m.readable:
			m.drainNotify()
		case ev := <-m.exits:
			m.drainNotify()
			m.onExit(ev)
		case <-m.a.timer.C:
			m.onTimer()
		case <-m.a.wd.C:
			m.onWatchdog("watchdog")
		case <-ctxDone:
			ctxDone = nil
			m.beginClose()
		case <-closeReq:
			closeReq = nil
			m.beginClose()
		}
	}
	m.a.timer.Stop()
	m.a.wd.Stop()
	m.release()
}

// drainNotify acts on every datagram waiting on the socket.
func (m *Manager) drainNotify() {
	for {
		d, ok := recvNotify(m.conn)
		if !ok {
			return
		}
		m.onNotify(d)
	}
}

// release frees the socket, its folder and the output copiers, and marks
// the manager closed.
func (m *Manager) release() {
	close(m.quit)
	m.conn.Close()
	m.reader.Wait()
	m.out.close()
	os.RemoveAll(m.dir)
	m.update(func(v *view) {
		v.closed = true
		v.final = true
	})
	close(m.done)
}

// update changes the view under the lock and wakes the waiters.
func (m *Manager) update(f func(*view)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.view)
	close(m.wake)
	m.wake = make(chan struct{})
}

// setPhase moves to p, recording the transition of State if there is one.
func (m *Manager) setPhase(p phase, why string) {
	m.a.phase = p
	if !p.live() {
		m.stopWatchdog() // systemd keeps it only in start-post, running and reload
	}
	now := p.state()
	if now == Inactive && m.a.result != ResultSuccess {
		now = Failed
	}
	m.update(func(v *view) {
		if v.state != now {
			v.transitions = append(v.transitions, Transition{Time: time.Now(), From: v.state, To: now, Why: why})
			v.state = now
		}
		v.final = p == phDead
		if m.a.main == nil {
			v.mainPID = 0
		} else {
			v.mainPID = m.a.main.pid
		}
	})
}

func (m *Manager) armTimer(d time.Duration) {
	m.a.timer.Reset(d)
	m.a.timerDeadline = time.Now().Add(d)
}

func (m *Manager) stopTimer() {
	m.a.timer.Stop()
	m.a.timerDeadline = time.Time{}
}

// startRun starts one run of the service, or fails the unit when the start
// limit is hit. A start that cannot exec is a run that ended at once with
// status 203 (and, from Start, an error).
func (m *Manager) startRun(why string) error {
	now := time.Now()
	if b := m.cfg.StartLimitBurst; b > 0 {
		recent := m.a.startTimes[:0]
		for _, t := range m.a.startTimes {
			if now.Sub(t) < m.cfg.StartLimitInterval {
				recent = append(recent, t)
			}
		}
		m.a.startTimes = recent
		if len(recent) >= b {
			m.a.result = ResultStartLimitHit
			err := fmt.Errorf("start limit hit: %d starts within %s", len(recent), m.cfg.StartLimitInterval)
			m.update(func(v *view) {
				v.exits = append(v.exits, Exit{Time: now, Code: -1, Result: ResultStartLimitHit, Err: err})
			})
			m.setPhase(phDead, "start-limit-hit")
			return err
		}
		m.a.startTimes = append(m.a.startTimes, now)
	}
	m.a.result = ResultSuccess
	m.a.wdOverride, m.a.wdOverrideSet = 0, false
	p, err := spawn(m.cfg, m.notifyPath, m.cfg.WatchdogSec, &m.out, m.exits, m.quit)
	if err != nil {
		m.a.result = ResultExitCode
		m.update(func(v *view) {
			v.exits = append(v.exits, Exit{Time: time.Now(), Code: exitStatusExec, Result: ResultExitCode, Err: err})
		})
		m.enterDead(why)
		return err
	}
	m.a.main = p
	m.update(func(v *view) { v.starts++ })
	m.armTimer(m.cfg.TimeoutStartSec)
	m.setPhase(phStart, why)
	return nil
}

// enterDead ends a run: restart after RestartSec (Restart=always), or stay
// inactive or failed.
func (m *Manager) enterDead(why string) {
	m.stopTimer()
	m.finishReload(ErrReloadAborted)
	if m.a.stopping || m.cfg.NoRestart {
		m.setPhase(phDead, why)
		return
	}
	m.setPhase(phAutoRestart, why)
	m.armTimer(m.cfg.RestartSec)
}

// onTimer acts on the state's timeout.
func (m *Manager) onTimer() {
	m.a.timerDeadline = time.Time{}
	switch m.a.phase {
	case phStart:
		m.terminate(phStopSigterm, m.cfg.TimeoutStopSec, ResultTimeout, "start-timeout")
	case phReloadSignal, phReloadNotify:
		// systemd: "Reload operation timed out"; the service keeps running.
		// Active again before the waiter hears of it: Reload's caller
		// finds the unit as the answer says.
		m.setPhase(phRunning, "reload-timeout")
		m.finishReload(ErrReloadTimeout)
	case phStopSigterm, phStopWatchdog:
		m.terminate(phStopSigkill, 0, ResultTimeout, "stop-timeout")
	case phAutoRestart:
		m.startRun("restart") //nolint:errcheck // recorded as an exit
	}
}
