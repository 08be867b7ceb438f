using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Samples.Hosting;

/// <summary>What the sample's services log, as source-generated messages (nothing is formatted when the level is off).</summary>
internal static partial class SampleLog
{
    [LoggerMessage(Level = LogLevel.Information, Message = "{Member} started: data in {DataDirectory}, cluster {ClusterId:x16}")]
    public static partial void StoreStarted(ILogger logger, string member, string dataDirectory, ulong clusterId);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Member} stopped")]
    public static partial void StoreStopped(ILogger logger, string member);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Member}: configuration at revision {Revision}: {Keys}")]
    public static partial void ConfigurationApplied(ILogger logger, string member, long revision, string keys);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Member}: the configuration watch restarts ({Reason})")]
    public static partial void ConfigurationWatchRestarts(ILogger logger, string member, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Member} won the election for the report job (revision {Revision}, lease {LeaseId:x})")]
    public static partial void ElectionWon(ILogger logger, string member, long revision, long leaseId);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Member}: campaigning for the report job failed; trying again")]
    public static partial void CampaignFailed(ILogger logger, Exception exception, string member);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Member} no longer runs the report job")]
    public static partial void JobLeft(ILogger logger, string member);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Member}: the report job is fenced off (its election key is gone)")]
    public static partial void JobFenced(ILogger logger, string member);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Owner} holds {Key} (revision {Revision}, lease {LeaseId:x})")]
    public static partial void LockAcquired(ILogger logger, string owner, string key, long revision, long leaseId);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Owner} waits for {Key}, held by {Holder}")]
    public static partial void LockWaiting(ILogger logger, string owner, string key, string holder);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Owner}: renewing lease {LeaseId} failed ({Reason}); retrying")]
    public static partial void LeaseRenewalFailed(ILogger logger, string owner, long leaseId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Owner} lost {Key}: lease {LeaseId} is gone")]
    public static partial void LockLost(ILogger logger, string owner, string key, long leaseId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Owner} could not revoke lease {LeaseId} of {Key} ({Reason}); it expires in {TtlSeconds} s")]
    public static partial void LeaseRevokeFailed(ILogger logger, string owner, long leaseId, string key, string reason, long ttlSeconds);
}
