// Pod securityContext.sysctls: Kubernetes' safe set only, with the place of every refusal;
// and the confinement tables a container gets (seccomp lists, device rules).
import Foundation
import MinikRuntime
import MinikSpec
import Testing

@Suite("Pod sysctls and container confinement")
struct SecuritySpecTests {
    func podWith(_ securityContext: String) -> String {
        clusterHeader + """
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: tuned}
        spec:
          securityContext:
        \(indent(securityContext, 4))
          containers:
          - {name: c, image: busybox}

        """
    }

    @Test("safe sysctls are accepted, dotted or slashed, in file order")
    func safeSysctls() throws {
        let spec = try SpecLoader.parse(podWith("""
        sysctls:
        - {name: net.ipv4.ip_local_port_range, value: "20000 20999"}
        - {name: net/ipv4/ip_unprivileged_port_start, value: "80"}
        - {name: kernel.shm_rmid_forced, value: "1"}
        """), file: "cluster.yaml")
        let p = try #require(spec.pods.first { $0.name == "tuned" })
        #expect(p.sysctls == [Sysctl(name: "net.ipv4.ip_local_port_range", value: "20000 20999"),
                              Sysctl(name: "net.ipv4.ip_unprivileged_port_start", value: "80"),
                              Sysctl(name: "kernel.shm_rmid_forced", value: "1")])
        #expect(p.sysctls[1].procPath == "/proc/sys/net/ipv4/ip_unprivileged_port_start")
        #expect(p.sysctls[1].namespace == "net" && p.sysctls[2].namespace == "ipc")
    }

    @Test("unsafe, repeated, empty and multi-line sysctls are refused with their place")
    func refusedSysctls() {
        let unsafe = podWith("sysctls:\n- {name: kernel.core_pattern, value: \"|/tmp/x\"}")
        expectRejected(unsafe, field: "spec.securityContext.sysctls[0].name", line: line(of: "kernel.core_pattern", in: unsafe),
                       saying: "sysctl \"kernel.core_pattern\" is not allowed")
        let forwarding = podWith("sysctls:\n- {name: net.ipv4.ip_forward, value: \"0\"}")
        expectRejected(forwarding, field: "spec.securityContext.sysctls[0].name", line: line(of: "ip_forward", in: forwarding),
                       saying: "only Kubernetes' safe sysctls")
        let twice = podWith("sysctls:\n- {name: net.ipv4.tcp_syncookies, value: \"1\"}\n- {name: net/ipv4/tcp_syncookies, value: \"0\"}")
        expectRejected(twice, field: "spec.securityContext.sysctls[1].name", line: line(of: "net/ipv4/tcp_syncookies", in: twice),
                       saying: "given twice")
        let empty = podWith("sysctls:\n- {name: net.ipv4.tcp_syncookies, value: \"\"}")
        expectRejected(empty, field: "spec.securityContext.sysctls[0].value", line: line(of: "tcp_syncookies", in: empty),
                       saying: "non-empty line")
        let newline = podWith("sysctls:\n- {name: net.ipv4.tcp_syncookies, value: \"1\\n2\"}")
        expectRejected(newline, field: "spec.securityContext.sysctls[0].value", line: line(of: "tcp_syncookies", in: newline),
                       saying: "non-empty line")
        let typo = podWith("sysctl: []")
        expectRejected(typo, field: "spec.securityContext.sysctl", line: line(of: "sysctl: []", in: typo), saying: "sysctl")
    }

    @Test("the seccomp lists follow Docker's profile; device rules allow only /dev's own devices")
    func confinementTables() {
        // CAP_SYS_ADMIN opens what Docker opens with it, nothing that needs other capabilities.
        #expect(Confinement.sysAdminAllowed.isSubset(of: Set(Confinement.deniedSyscalls)))
        for stays in ["kexec_load", "init_module", "reboot", "keyctl", "clock_settime", "swapon", "iopl", "userfaultfd"] {
            #expect(!Confinement.sysAdminAllowed.contains(stays), "\(stays)")
        }
        #expect(Confinement.deniedSyscalls.contains("unshare") && Confinement.deniedSyscalls.contains("setns"))
        #expect(Cgroups.allowedDevices.allSatisfy { $0.hasPrefix("c ") && $0.hasSuffix(" rwm") && !$0.contains("*:*") })
        #expect(Cgroups.allowedDevices.count == 8)
    }
}

@Suite("Writable layer size")
struct EphemeralStorageTests {
    func podWith(_ limit: String) -> String {
        clusterHeader + """
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: disk}
        spec:
          containers:
          - name: c
            image: busybox
            resources: {limits: {ephemeral-storage: \(limit)}}

        """
    }

    @Test("resources.limits.ephemeral-storage sizes the writable layer; below 1Mi (0 would be unlimited) is refused")
    func ephemeralStorage() throws {
        let spec = try SpecLoader.parse(podWith("64Mi"), file: "cluster.yaml")
        #expect(spec.pods.first { $0.name == "disk" }?.containers.first?.ephemeralStorageLimit == Int64(64 << 20))
        for bad in ["\"0\"", "1Ki", "1000"] {
            let text = podWith(bad)
            expectRejected(text, field: "spec.containers[0].resources.limits.ephemeral-storage", line: line(of: "ephemeral-storage", in: text),
                           saying: "below the 1Mi minimum")
        }
    }
}
