using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EmbeddedRaft.Samples.EtcdCompatibleServer;
using EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;
using Grpc.Net.Client;
using static EmbeddedRaft.Interop.Tests.Grpc.EtcdClients;

namespace EmbeddedRaft.Interop.Tests.Grpc;

/// <summary>The endpoints serve TLS with a certificate and key from PEM files (etcd's --cert-file / --key-file).</summary>
[TestFixture]
public sealed class TlsOverGrpcTests
{
    [Test]
    public async Task WithACertificateConfiguredEveryEndpointServesTls()
    {
        DirectoryInfo directory = Directory.CreateTempSubdirectory("interop-tls-");
        try
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
            var names = new SubjectAlternativeNameBuilder();
            names.AddIpAddress(System.Net.IPAddress.Loopback);
            request.CertificateExtensions.Add(names.Build());
            using X509Certificate2 certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
            string certificatePath = Path.Combine(directory.FullName, "server.pem");
            string keyPath = Path.Combine(directory.FullName, "server-key.pem");
            await File.WriteAllTextAsync(certificatePath, certificate.ExportCertificatePem());
            await File.WriteAllTextAsync(keyPath, key.ExportPkcs8PrivateKeyPem());

            await using OurEtcdCluster cluster = await OurEtcdCluster.StartOursAsync(new EtcdServerOptions { TlsCertificatePath = certificatePath, TlsKeyPath = keyPath });
            foreach (ClusterMember member in cluster.Members)
            {
                Assert.That(member.ClientUrl, Does.StartWith("https://"));
                // Trust exactly the generated certificate, as a client given --cacert would.
                using var handler = new HttpClientHandler
                {
                    ServerCertificateCustomValidationCallback = (_, presented, _, _) => presented is not null && presented.RawData.AsSpan().SequenceEqual(certificate.RawData),
                };
                using var channel = GrpcChannel.ForAddress(member.ClientUrl, new GrpcChannelOptions { HttpHandler = handler });
                var kv = new KV.KVClient(channel);
                PutResponse put = await kv.PutAsync(new PutRequest { Key = Bytes("tls/" + member.Name), Value = Bytes("secret") });
                Assert.That(put.Header.MemberId, Is.EqualTo(member.Id));
            }
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }
}
