package plugins

import (
	"context"
	"fmt"
	"github.com/keystone-edge/keystone/runner"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/keystone-edge/keystone/supervisor"
)

// Dispatcher is the supervisor's Launcher for a mixed set: plugin
// components go to Plugins, every other kind to Process.
type Dispatcher struct {
	// Process launches kind = process components; required.
	Process supervisor.Launcher
	// Plugins launches kind = plugin components; required.
	Plugins *Launcher
}

// Launch starts c with the launcher of its kind.
func (d Dispatcher) Launch(ctx context.Context, c *supervisor.Component) (supervisor.Handle, error) {
	switch c.Recipe.Metadata.Kind {
	case recipes.KindPlugin:
		return d.Plugins.Launch(ctx, c)
	case recipes.KindProcess:
		return d.Process.Launch(ctx, c)
	}
	return nil, fmt.Errorf("start %s@%s: unknown kind %q", c.Name(), c.Version(), c.Recipe.Metadata.Kind)
}

// Adopt takes over a process component's process handed over by the
// previous image of the agent process; plugins have none to take over.
func (d Dispatcher) Adopt(ctx context.Context, c *supervisor.Component, h runner.HandOver) (supervisor.Handle, error) {
	ad, ok := d.Process.(supervisor.Adopter)
	if !ok || c.Recipe.Metadata.Kind != recipes.KindProcess {
		return nil, fmt.Errorf("adopt %s@%s: its launcher cannot take over a process", c.Name(), c.Version())
	}
	return ad.Adopt(ctx, c, h)
}
