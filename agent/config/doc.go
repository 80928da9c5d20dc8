// Package config reads the agent's configuration file, agent.toml:
// it decodes it strictly (an unknown key is an error naming its path),
// applies defaults, resolves relative paths against the file's folder,
// validates every value and reports every problem found, each with its
// file:line:column where known. It also names the files and folders under
// data_dir and root_dir.
//
// It only reads the one file it is given: it opens no sockets, checks no
// users, groups, certificates or keys on the system, and creates no
// folders. Those checks belong to the agent at start-up and to
// keystonectl doctor.
package config
