// The cluster's certificates, as kind's kubeadm makes them: a CA ("kubernetes"), the API
// server's certificate for 127.0.0.1, localhost and the in-cluster names, and the
// admin's client certificate (CN kubernetes-admin, O kubeadm:cluster-admins). P-256 keys
// and X.509 from swift-crypto and swift-certificates; nothing here does crypto itself.
// Files live in the cluster's state directory (root only, 0600) and are kept when a new
// supervisor adopts the cluster, so a user's kubeconfig stays valid.
import Crypto
import Foundation
import SwiftASN1
import X509

public struct PKIFiles: Sendable {
    public var dir: String
    public var caCert: String { "\(dir)/ca.crt" }
    public var caKey: String { "\(dir)/ca.key" }
    public var serverCert: String { "\(dir)/apiserver.crt" }
    public var serverKey: String { "\(dir)/apiserver.key" }
    public var adminCert: String { "\(dir)/admin.crt" }
    public var adminKey: String { "\(dir)/admin.key" }

    public init(dir: String) { self.dir = dir }
}

public struct PKIError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

public enum PKI {
    /// Makes the CA and both certificates unless they exist (then reads nothing: the
    /// server loads them). The server certificate names every address given.
    public static func ensure(_ files: PKIFiles, serverIPs: [[UInt8]], serverNames: [String]) throws(PKIError) {
        let fm = FileManager.default
        if [files.caCert, files.caKey, files.serverCert, files.serverKey, files.adminCert, files.adminKey].allSatisfy(fm.fileExists) { return }
        do {
            try fm.createDirectory(atPath: files.dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let now = Date()
            let notBefore = now.addingTimeInterval(-300)
            let caKey = P256.Signing.PrivateKey()
            let caName = try DistinguishedName { CommonName("kubernetes") }
            let ca = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(caKey.publicKey),
                notValidBefore: notBefore, notValidAfter: now.addingTimeInterval(10 * 365 * 86400),
                issuer: caName, subject: caName, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                    Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
                    SubjectKeyIdentifier(hash: .init(caKey.publicKey))
                },
                issuerPrivateKey: .init(caKey))
            func issue(_ subject: DistinguishedName, _ key: P256.Signing.PrivateKey, server: Bool) throws -> Certificate {
                try Certificate(
                    version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
                    notValidBefore: notBefore, notValidAfter: now.addingTimeInterval(365 * 86400),
                    issuer: caName, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                    extensions: try Certificate.Extensions {
                        Critical(BasicConstraints.notCertificateAuthority)
                        Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                        try ExtendedKeyUsage([server ? .serverAuth : .clientAuth])
                        if server {
                            SubjectAlternativeNames(serverNames.map { GeneralName.dnsName($0) }
                                + serverIPs.map { GeneralName.ipAddress(ASN1OctetString(contentBytes: ArraySlice($0))) })
                        }
                    },
                    issuerPrivateKey: .init(caKey))
            }
            let serverKey = P256.Signing.PrivateKey()
            let server = try issue(try DistinguishedName { CommonName("kube-apiserver") }, serverKey, server: true)
            let adminKey = P256.Signing.PrivateKey()
            let admin = try issue(try DistinguishedName {
                OrganizationName("kubeadm:cluster-admins")
                CommonName("kubernetes-admin")
            }, adminKey, server: false)
            func write(_ path: String, _ text: String) throws {
                let tmp = path + ".tmp"
                guard fm.createFile(atPath: tmp, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                    throw PKIError(description: "cannot write \(tmp)")
                }
                _ = rename(tmp, path)
            }
            try write(files.caKey, caKey.pemRepresentation)
            try write(files.serverKey, serverKey.pemRepresentation)
            try write(files.adminKey, adminKey.pemRepresentation)
            try write(files.serverCert, try server.serializeAsPEM().pemString)
            try write(files.adminCert, try admin.serializeAsPEM().pemString)
            // The CA last: its presence says the set is complete.
            try write(files.caCert, try ca.serializeAsPEM().pemString)
        } catch let e as PKIError {
            throw e
        } catch {
            throw PKIError(description: "cannot make the cluster's certificates in \(files.dir): \(error)")
        }
    }

    /// Whether a client certificate (DER) was issued by the CA and is valid now; the
    /// user's name (CN) when it is.
    public static func verifyClient(der: [UInt8], ca: Certificate) async -> String? {
        guard let leaf = try? Certificate(derEncoded: der) else { return nil }
        var verifier = Verifier(rootCertificates: CertificateStore([ca])) {
            RFC5280Policy(validationTime: Date())
        }
        let result = await verifier.validate(leafCertificate: leaf, intermediates: CertificateStore())
        guard case .validCertificate = result else { return nil }
        guard let eku = try? leaf.extensions.extendedKeyUsage, eku.contains(.clientAuth) else { return nil }
        for rdn in leaf.subject {
            for attr in rdn where attr.type == .RDNAttributeType.commonName {
                return String(describing: attr.value)
            }
        }
        return "unknown"
    }
}
