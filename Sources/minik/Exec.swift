import ArgumentParser
import CMinik
import Foundation
import MinikRuntime

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a command inside a pod's namespaces (network, UTS, IPC).")

    @Option(name: .shortAndLong, help: "Namespace of the pod.") var namespace: String = "default"
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
            throw CLIError("pod \(namespace)/\(pod) is not running (\(p.phase.rawValue)\(p.message.map { ": \($0)" } ?? ""))")
        }
        let paths = ["net", "uts", "ipc"].map { "/proc/\(p.pid)/ns/\($0)" }
        throw ExitCode(try runIn(namespaces: paths, command: command))
    }
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
        throw ExitCode(try runIn(namespaces: [Naming.netnsPath(n.netns)], command: command))
    }
}

/// Runs command in a child that joins the given namespaces first; returns its exit code
/// (128 + signal when it was killed), as a shell would.
func runIn(namespaces: [String], command: [String]) throws -> Int32 {
    var fds: [Int32] = []
    defer { fds.forEach { close($0) } }
    for p in namespaces {
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw CLIError("cannot open \(p): \(String(cString: strerror(errno)))") }
        fds.append(fd)
    }
    guard let path = resolveExecutable(command[0]) else {
        throw CLIError("exec: \"\(command[0])\": executable file not found in $PATH")
    }
    var attr = minik_spawn_attr()
    attr.join_fds = (fds.count > 0 ? fds[0] : -1, fds.count > 1 ? fds[1] : -1, fds.count > 2 ? fds[2] : -1, -1)
    attr.stdin_fd = 0
    attr.stdout_fd = 1
    attr.stderr_fd = 2
    attr.new_session = 0
    let env = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
    // The terminal's ^C goes to the command; we only wait for it.
    signal(SIGINT, SIG_IGN)
    signal(SIGQUIT, SIG_IGN)
    let pid = Sandbox.spawn(path: path, argv: command, env: env, attr: &attr)
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
