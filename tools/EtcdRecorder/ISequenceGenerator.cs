namespace EmbeddedRaft.EtcdRecorder;

/// <summary>A seeded sequence of requests that may follow etcd's answers: the KV sequence or the lease sequence.</summary>
internal interface ISequenceGenerator
{
    GeneratedOperation Next();

    void Observe(GeneratedOperation operation, GatewayResult result);
}
