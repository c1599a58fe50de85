// cnictl: a cnitool-compatible libcni client for tscni's e2e tests.
//
//	cnictl add|check|del|gc|status <network name> <netns path>
//
// Environment as cnitool reads it: NETCONFPATH (default /etc/cni/net.d), CNI_PATH, CNI_IFNAME (default eth0),
// CNI_ARGS, CAP_ARGS (JSON, becomes runtimeConfig for the capabilities a plugin declares).
// Our additions: CNI_CONTAINERID (default cnitool's "cnitool-" + 20 hex of sha512(netns path)),
// CNI_CACHE_DIR (libcni's cache dir, default /var/lib/cni) and, for gc, CNI_VALID_ATTACHMENTS
// (JSON list of {"containerID","ifname"}; default none, as cnitool does).
//
// Debian's libcni (1.1.x) predates spec 1.1: it has no GC or STATUS and cannot parse 1.1.0 results, so gc and
// status are done here the way libcni 1.2 does them, by invoking each plugin of the list directly.
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

func main() {
	if len(os.Args) != 4 {
		usage()
	}
	cmd, netName := os.Args[1], os.Args[2]

	netdir := os.Getenv("NETCONFPATH")
	if netdir == "" {
		netdir = "/etc/cni/net.d"
	}
	list, err := libcni.LoadConfList(netdir, netName)
	if err != nil {
		exit(err)
	}

	var capArgs map[string]interface{}
	if s := os.Getenv("CAP_ARGS"); s != "" {
		if err := json.Unmarshal([]byte(s), &capArgs); err != nil {
			exit(fmt.Errorf("CAP_ARGS: %w", err))
		}
	}
	cniArgs, err := parseArgs(os.Getenv("CNI_ARGS"))
	if err != nil {
		exit(err)
	}
	ifName, ok := os.LookupEnv("CNI_IFNAME")
	if !ok {
		ifName = "eth0"
	}
	netns, err := filepath.Abs(os.Args[3])
	if err != nil {
		exit(err)
	}
	containerID := os.Getenv("CNI_CONTAINERID")
	if containerID == "" {
		sum := sha512.Sum512([]byte(netns))
		containerID = fmt.Sprintf("cnitool-%x", sum[:10])
	}

	path := filepath.SplitList(os.Getenv("CNI_PATH"))
	cninet := libcni.NewCNIConfigWithCacheDir(path, os.Getenv("CNI_CACHE_DIR"), nil)
	rt := &libcni.RuntimeConf{
		ContainerID:    containerID,
		NetNS:          netns,
		IfName:         ifName,
		Args:           cniArgs,
		CapabilityArgs: capArgs,
	}
	ctx := context.Background()

	switch cmd {
	case "add":
		result, err := cninet.AddNetworkList(ctx, list, rt)
		if result != nil {
			_ = result.Print()
		}
		exit(err)
	case "check":
		exit(cninet.CheckNetworkList(ctx, list, rt))
	case "del":
		exit(cninet.DelNetworkList(ctx, list, rt))
	case "gc":
		var valid []map[string]string
		if s := os.Getenv("CNI_VALID_ATTACHMENTS"); s != "" {
			if err := json.Unmarshal([]byte(s), &valid); err != nil {
				exit(fmt.Errorf("CNI_VALID_ATTACHMENTS: %w", err))
			}
		}
		if valid == nil {
			valid = []map[string]string{}
		}
		exit(eachPlugin(ctx, list, path, "GC", map[string]interface{}{"cni.dev/valid-attachments": valid}))
	case "status":
		exit(eachPlugin(ctx, list, path, "STATUS", nil))
	default:
		usage()
	}
}

// eachPlugin runs a list-wide verb (GC, STATUS) on every plugin, as libcni 1.2 does: skipped below spec 1.1.0,
// each plugin gets its own config with the list's name and cniVersion; GC goes on after an error, STATUS stops.
func eachPlugin(ctx context.Context, list *libcni.NetworkConfigList, path []string, verb string, extra map[string]interface{}) error {
	if ok, err := version.GreaterThanOrEqualTo(list.CNIVersion, "1.1.0"); err != nil || !ok {
		return nil
	}
	var errs []string
	for _, p := range list.Plugins {
		conf := map[string]interface{}{}
		if err := json.Unmarshal(p.Bytes, &conf); err != nil {
			return fmt.Errorf("plugin %s: %w", p.Network.Type, err)
		}
		conf["name"] = list.Name
		conf["cniVersion"] = list.CNIVersion
		for k, v := range extra {
			conf[k] = v
		}
		stdin, err := json.Marshal(conf)
		if err != nil {
			return err
		}
		exe, err := invoke.FindInPath(p.Network.Type, path)
		if err != nil {
			return err
		}
		args := &invoke.Args{Command: verb, Path: strings.Join(path, string(os.PathListSeparator))}
		if err := invoke.ExecPluginWithoutResult(ctx, exe, stdin, args, nil); err != nil {
			if verb != "GC" {
				return fmt.Errorf("plugin %s: %w", p.Network.Type, err)
			}
			errs = append(errs, fmt.Sprintf("plugin %s: %v", p.Network.Type, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// parseArgs follows cnitool: KEY=VALUE pairs separated by ';', neither side empty.
func parseArgs(s string) ([][2]string, error) {
	if s == "" {
		return nil, nil
	}
	var out [][2]string
	for _, pair := range strings.Split(s, ";") {
		kv := strings.SplitN(pair, "=", 2)
		if len(kv) != 2 || kv[0] == "" || kv[1] == "" {
			return nil, fmt.Errorf("invalid CNI_ARGS pair %q", pair)
		}
		out = append(out, [2]string{kv[0], kv[1]})
	}
	return out, nil
}

func usage() {
	exe := filepath.Base(os.Args[0])
	fmt.Fprintf(os.Stderr, "usage: %s add|check|del|gc|status <network name> <netns path>\n", exe)
	os.Exit(2)
}

func exit(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}
