package agent

import (
	"context"
	"fmt"

	"github.com/keystone-edge/keystone/comms"
	"github.com/keystone-edge/keystone/comms/message"
	"github.com/keystone-edge/keystone/ota/sign"
)

// newComms builds the MQTT side of the agent when agent.toml names a
// broker, and nil in local-only mode.
func (a *Agent) newComms(keyring *sign.Keyring) (*comms.Device, error) {
	m := a.cfg.MQTT
	if m.Broker == "" {
		return nil, nil
	}
	d, err := comms.New(comms.Config{
		DeviceID:       a.cfg.DeviceID,
		Groups:         a.cfg.Groups,
		AgentVersion:   a.opts.Version,
		BrokerURL:      m.Broker,
		Insecure:       m.Insecure,
		CAFile:         m.CAFile,
		CertFile:       m.CertFile,
		KeyFile:        m.KeyFile,
		TopicPrefix:    m.TopicPrefix,
		SessionExpiry:  m.SessionExpiry.Duration,
		PublishMetrics: m.PublishMetrics,
		Keyring:        keyring,
		Store:          a.store,
		Deployer:       a.engine,
		AgentUpdater:   agentUpdates{a},
		Bus:            a.bus,
		Components:     a.componentStates,
		Now:            a.clock.Now,
		Logger:         a.log.With("part", "mqtt"),
		FaultHook:      a.opts.FaultHook,
	})
	if err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	return d, nil
}

// componentStates lists the supervised components as MQTT state messages
// show them.
func (a *Agent) componentStates() []message.ComponentStatus {
	snap := a.sup.Snapshot()
	out := make([]message.ComponentStatus, 0, len(snap))
	for _, st := range snap {
		out = append(out, message.ComponentStatus{Name: st.Name, Version: st.Version, State: st.State.String()})
	}
	return out
}

// startComms runs the MQTT side until shutdown; in local-only mode it does
// nothing.
func (a *Agent) startComms(ctx context.Context) {
	if a.comms == nil {
		return
	}
	cctx, stop := context.WithCancel(ctx)
	a.own("disconnect from the MQTT broker", stop, func() {
		if err := a.comms.Run(cctx); err != nil && cctx.Err() == nil {
			a.fail(fmt.Errorf("mqtt: %w", err))
		}
	})
}

// agentUpdates gives comms the agent's self-update, which is built after
// the MQTT connection is.
type agentUpdates struct{ a *Agent }

func (u agentUpdates) UpdateAgent(ctx context.Context, jobID, version string) error {
	return u.a.update.UpdateAgent(ctx, jobID, version)
}

func (u agentUpdates) AgentUpdateStatus(jobID string) (comms.AgentUpdateStatus, bool) {
	return u.a.update.AgentUpdateStatus(jobID)
}
