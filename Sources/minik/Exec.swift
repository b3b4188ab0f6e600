import ArgumentParser
import CMinik
import Foundation
import MinikRuntime
import MinikSpec

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a command in a container of a pod (its mount, PID, network, UTS and IPC namespaces).")

    @Option(name: .shortAndLong, help: "Namespace of the pod.") var namespace: String = "default"
    @Option(name: .shortAndLong, help: "The container (default: the first running one).") var container: String?
    @Flag(name: [.customShort("i"), .customLong("stdin")], help: "Pass stdin to the command.") var stdin = false
    @Flag(name: .shortAndLong, help: "Give the command a terminal of its own in the container, fed from this one (use with -i for a shell).") var tty = false
    @OptionGroup var cluster: ClusterOption
    @Argument(help: "The pod.") var pod: String
    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.") var command: [String] = []

    func run() throws {
        try requireRoot("minik exec")
        guard !command.isEmpty else { throw CLIError("no command: minik exec POD -- COMMAND [ARGS...]") }
        let name = try cluster.resolve()
        let (state, _) = try clusterState(name)
        guard let p = state.pod(pod, namespace: namespace) else {
            throw CLIError("pod \"\(pod)\" not found in namespace \(namespace) of cluster \(name)")
        }
        guard p.phase == .running, Sandbox.isAlive(p.pid, startTime: p.startTime) else {
            throw CLIError("pod \(namespace)/\(pod) is not running (\(p.statusText)\(p.message.map { ": \($0)" } ?? ""))")
        }
        let target = try pick(container, in: p, preferRunning: true)
        guard target.isRunning, Sandbox.isAlive(target.pid, startTime: target.startTime) else {
            throw CLIError("container \(target.name) is not running (\(target.reason ?? target.state.rawValue)); try again when it is")
        }
        // The command gets what the container's own processes get (kubectl exec does too).
        let cspec = state.spec.pods.first { $0.key == p.key }.flatMap { s in (s.initContainers + s.containers).first { $0.name == target.name } }
        let entry: ContainerEntry
        do { entry = try ContainerEntry(pid: target.pid, container: cspec) } catch { throw CLIError("\(error)") }
        var env = entry.env
        var useTTY = tty
        var rows: UInt16 = 0, cols: UInt16 = 0
        if tty && isatty(0) == 0 {
            printErr("Unable to use a TTY - input is not a terminal or the right kind of file")
            useTTY = false
        }
        if useTTY {
            _ = minik_tty_size(0, &rows, &cols)
            if let term = ProcessInfo.processInfo.environment["TERM"] { env.append("TERM=\(term)") }
        }
        let process: ContainerExec
        do {
            process = try ContainerExec(command, in: entry, env: env, stdin: stdin || useTTY, tty: useTTY, rows: rows, cols: cols)
        } catch {
            throw CLIError("\(error)")
        }
        throw ExitCode(ExecStreams.pump(process))
    }
}

/// The container -c names, or the pod's first app container (the first running one when
/// preferRunning), with kubectl's "Defaulted container" note when the pod has several.
func pick(_ name: String?, in p: PodState, preferRunning: Bool) throws -> ContainerStatus {
    if let name {
        guard let c = p.containers.first(where: { $0.name == name }) else {
            throw CLIError("container \(name) is not valid for pod \(p.name) (containers: \(p.containers.map(\.name).joined(separator: ", ")))")
        }
        return c
    }
    guard let c = (preferRunning ? p.appContainers.first(where: \.isRunning) : nil) ?? p.appContainers.first else {
        throw CLIError("pod \(p.name) has no containers")
    }
    if p.appContainers.count > 1 {
        printErr("Defaulted container \"\(c.name)\" out of: \(p.containers.map(\.name).joined(separator: ", "))")
    }
    return c
}

struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node", abstract: "Work with nodes.", subcommands: [NodeExec.self])
}

struct NodeExec: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "exec", abstract: "Run a command inside a node's network namespace.")

    @OptionGroup var cluster: ClusterOption
    @Argument(help: "The node.") var node: String
    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.") var command: [String] = []

    func run() throws {
        try requireRoot("minik node exec")
        guard !command.isEmpty else { throw CLIError("no command: minik node exec NODE -- COMMAND [ARGS...]") }
        let name = try cluster.resolve()
        let (state, _) = try clusterState(name)
        guard let n = state.nodes.first(where: { $0.name == node }) else {
            throw CLIError("node \"\(node)\" not found in cluster \(name) (nodes: \(state.nodes.map(\.name).joined(separator: ", ")))")
        }
        throw ExitCode(try runIn(netns: Naming.netnsPath(n.netns), command: command))
    }
}

/// Runs a host command inside a network namespace (a node's, the external host's).
func runIn(netns path: String, command: [String]) throws -> Int32 {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { throw CLIError("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    return try runIn([fd], command: command)
}

/// Runs a host command (the user's own tools: ip, tcpdump, dig...) in a child that joins
/// the namespaces `fds` first, on this terminal, like `ip netns exec`; returns its exit
/// code (128 + signal when it was killed), as a shell would. Never used for a container:
/// code in a container never gets this terminal (ContainerExec).
func runIn(_ fds: [Int32], command: [String]) throws -> Int32 {
    guard let path = resolveExecutable(command[0]) else {
        throw CLIError("exec: \"\(command[0])\": executable file not found in $PATH")
    }
    let env = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
    // The terminal's ^C goes to the command; we only wait for it.
    signal(SIGINT, SIG_IGN)
    signal(SIGQUIT, SIG_IGN)
    let pid = Command.spawn(command, path: path, joining: fds, env: env, stdin: 0, stdout: 1, stderr: 2)
    if pid == -ENOENT { throw CLIError("exec: \"\(command[0])\": executable file not found in $PATH") }
    if pid < 0 { throw CLIError("exec \(command[0]): \(String(cString: strerror(-pid)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    if status & 0x7f == 0 { return (status >> 8) & 0xff }
    return 128 + (status & 0x7f)
}

func resolveExecutable(_ name: String) -> String? {
    if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for dir in path.split(separator: ":") {
        let candidate = "\(dir)/\(name)"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
}
