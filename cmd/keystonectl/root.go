package main

import (
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/agent/doctor"
)

// rootName is the program name used in usage lines and hints.
const rootName = "keystonectl"

// defaultSocket is the agent's local API socket when neither --socket nor
// KEYSTONE_SOCKET says otherwise.
const defaultSocket = "/run/keystone/agent.sock"

// options is what every command shares: the global flags and the streams.
// newRootCmd fills the flags; commands read them when they run.
type options struct {
	// Socket is the agent's Unix socket (--socket, env KEYSTONE_SOCKET).
	Socket string
	// Output is the result format (-o); "" before flags are parsed means table.
	Output outputFormat

	// In, Out and ErrOut are the command's stdin, stdout and stderr; results
	// go to Out, progress and errors to ErrOut. They must not be nil.
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// Getenv reads the environment; nil means an empty environment.
	Getenv func(string) string
	// Now reads the clock for relative times ("3s ago"); nil means time.Now.
	Now func() time.Time
	// Terminal says whether Out is a terminal, where long waits draw
	// progress on ErrOut; nil means ask the operating system about Out.
	Terminal func() bool
	// DoctorEnv is the machine doctor checks; nil means this one.
	DoctorEnv func() doctor.Env
}

func (o *options) doctorEnv() doctor.Env {
	if o.DoctorEnv == nil {
		return doctor.Env{}
	}
	return o.DoctorEnv()
}

func (o *options) getenv(key string) string {
	if o.Getenv == nil {
		return ""
	}
	return o.Getenv(key)
}

// newRootCmd builds the keystonectl command tree around opts.
func newRootCmd(opts *options) *cobra.Command {
	root := &cobra.Command{
		Use:   rootName,
		Short: "Operate KeyStone agents, recipes, keys and fleets",
		Long: `keystonectl operates KeyStone: the agent on this device (over its local
socket), component recipes and their signatures, and signing keys.

Every command prints its result as aligned columns, or with -o json as one
JSON document on stdout; errors go to stderr.

Exit codes:
  0  success
  1  the command failed (the reason is on stderr)
  2  usage error: unknown command or flag, wrong arguments`,
		Example: `  keystonectl component list
  keystonectl deploy apply -f deployment.toml --wait
  keystonectl keys generate --out ops
  keystonectl recipe sign --key ops.key hello.recipe.toml
  keystonectl -o json recipe verify --pub ops.pub hello.recipe.toml`,
		Args:          subcommandArgs,
		RunE:          missingSubcommand,
		SilenceErrors: true,
		SilenceUsage:  true,

		SuggestionsMinimumDistance: 2,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetIn(opts.In)
	root.SetOut(opts.Out)
	root.SetErr(opts.ErrOut)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &FlagError{Command: cmd.CommandPath(), Err: err}
	})

	opts.Output = formatTable
	socket := opts.getenv("KEYSTONE_SOCKET")
	if socket == "" {
		socket = defaultSocket
	}
	flags := root.PersistentFlags()
	flags.StringVar(&opts.Socket, "socket", socket, "agent API socket `PATH` (env KEYSTONE_SOCKET)")
	flags.VarP(&opts.Output, "output", "o", "output format: table or json")

	root.AddCommand(newAgentCmd(opts))
	root.AddCommand(newCACmd(opts))
	root.AddCommand(newComponentCmd(opts))
	root.AddCommand(newCompletionCmd(opts))
	root.AddCommand(newDeployCmd(opts))
	root.AddCommand(newDeviceCmd(opts))
	root.AddCommand(newDoctorCmd(opts, opts.doctorEnv))
	root.AddCommand(newEventsCmd(opts))
	root.AddCommand(newFleetCmd(opts))
	root.AddCommand(newKeysCmd(opts))
	root.AddCommand(newPluginCmd(opts))
	root.AddCommand(newRecipeCmd(opts))
	root.AddCommand(newRepoCmd(opts))
	root.AddCommand(newVersionCmd(opts))
	return root
}

// groupExitCodes ends the help of every command that only groups others.
const groupExitCodes = `

Exit codes:
  0  help was shown (--help)
  2  no command or an unknown command was given`

// newGroupCmd makes a command that only groups subcommands. Run without a
// subcommand or with an unknown one, it is a usage error (exit code 2).
func newGroupCmd(name, short, long, example string) *cobra.Command {
	return &cobra.Command{
		Use:     name,
		Short:   short,
		Long:    long + groupExitCodes,
		Example: example,
		Args:    subcommandArgs,
		RunE:    missingSubcommand,

		SuggestionsMinimumDistance: 2,
	}
}
