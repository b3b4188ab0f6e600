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
    @Flag(name: .shortAndLong, help: "The command gets this terminal (use with -i for a shell).") var tty = false
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
        let base = "/proc/\(target.pid)"
        let env = (try? String(contentsOfFile: "\(base)/environ", encoding: .utf8))?.split(separator: "\0").map(String.init) ?? []
        var childEnv = env
        if tty, let term = ProcessInfo.processInfo.environment["TERM"] { childEnv.append("TERM=\(term)") }
        let path = env.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        // The command gets what the container's own processes get (kubectl exec does too).
        let cspec = state.spec.pods.first { $0.key == p.key }.flatMap { s in (s.initContainers + s.containers).first { $0.name == target.name } }
        let confinement = Confinement(privileged: cspec?.privileged ?? false,
                                      capabilities: Capabilities.mask(add: cspec?.capabilitiesAdd ?? [], drop: cspec?.capabilitiesDrop ?? []))
        throw ExitCode(try runIn(namespaces: ["\(base)/ns/net", "\(base)/ns/uts", "\(base)/ns/ipc", "\(base)/ns/mnt"],
                                 pidNamespace: "\(base)/ns/pid", searchPath: path, env: childEnv,
                                 stdin: stdin || tty, confine: confinement, command: command))
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
        throw ExitCode(try runIn(namespaces: [Naming.netnsPath(n.netns)], command: command))
    }
}

/// Runs command in a child that joins the given namespaces first (and is born in
/// pidNamespace); returns its exit code (128 + signal when it was killed), as a shell would.
/// With searchPath the command is looked up inside the joined mount namespace; without,
/// on the host.
struct Confinement {
    var privileged: Bool
    var capabilities: UInt64
}

func runIn(namespaces: [String], pidNamespace: String? = nil, searchPath: String? = nil, env: [String]? = nil,
           stdin: Bool = true, confine: Confinement? = nil, command: [String]) throws -> Int32 {
    var fds: [Int32] = []
    defer { fds.forEach { close($0) } }
    for p in namespaces + (pidNamespace.map { [$0] } ?? []) {
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw CLIError("cannot open \(p): \(String(cString: strerror(errno)))") }
        fds.append(fd)
    }
    let path: String
    if searchPath != nil {
        path = command[0]
    } else {
        guard let p = resolveExecutable(command[0]) else {
            throw CLIError("exec: \"\(command[0])\": executable file not found in $PATH")
        }
        path = p
    }
    var attr = Sandbox.spawnAttributes()
    attr.join_fds = (fds.count > 0 ? fds[0] : -1, fds.count > 1 ? fds[1] : -1, fds.count > 2 ? fds[2] : -1,
                     fds.count > 3 && namespaces.count > 3 ? fds[3] : -1)
    if pidNamespace != nil { attr.pid_ns_fd = fds[fds.count - 1] }
    attr.stdin_fd = stdin ? 0 : -1
    attr.stdout_fd = 1
    attr.stderr_fd = 2
    attr.new_session = 0
    if let confine, !confine.privileged {
        attr.confine = 1
        attr.capabilities = confine.capabilities
        attr.seccomp_filter = UnsafePointer(ContainerRunner.seccompFilter)
    }
    let env = env ?? ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
    // The terminal's ^C goes to the command; we only wait for it.
    signal(SIGINT, SIG_IGN)
    signal(SIGQUIT, SIG_IGN)
    let pid: pid_t
    if let searchPath {
        pid = searchPath.withCString { sp in
            attr.search_path = sp
            return Sandbox.spawn(path: path, argv: command, env: env, attr: &attr)
        }
    } else {
        pid = Sandbox.spawn(path: path, argv: command, env: env, attr: &attr)
    }
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
