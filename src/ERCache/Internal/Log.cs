using Microsoft.Extensions.Logging;
using Polly.CircuitBreaker;

namespace ERCache.Internal;

/// <summary>
/// Every log message ERCache writes, with its event id, in one place (as HybridCache keeps them): an operator can look up
/// an id here, and two messages never share one.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Inference for model '{Model}' failed for a batch of {Users} user(s); serving failover or fallback. ({Suppressed} more failed calls since the last such line.)")]
    public static partial void InferenceFailed(ILogger logger, string model, int users, long suppressed, Exception exception);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Inference for model '{Model}' passed its hard timeout {HardTimeout} for a batch of {Users} user(s); the call was cancelled and abandoned. ({Suppressed} more since the last such line.)")]
    public static partial void HardTimeout(ILogger logger, string model, int users, TimeSpan hardTimeout, long suppressed);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "Rejected an ERCache configuration reload; the previous policies stay in force: {Errors}")]
    public static partial void ReloadRejected(ILogger logger, string errors);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "The circuit breaker of model '{Model}' is now {State}.")]
    public static partial void ModelBreakerState(ILogger logger, string model, CircuitState state);

    [LoggerMessage(EventId = 5, Level = LogLevel.Error, Message = "ERCache's inference scheduler for model '{Model}' failed; the batch's users get a fallback.")]
    public static partial void SchedulerFault(ILogger logger, string model, Exception exception);

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "The regional store failed a {Operation}; requests go on from the local tiers and inference. ({Suppressed} more failed calls since the last such line.)")]
    public static partial void RegionalStoreFailed(ILogger logger, string operation, long suppressed, Exception exception);

    [LoggerMessage(EventId = 21, Level = LogLevel.Warning, Message = "The regional store's circuit breaker is now {State}.")]
    public static partial void RegionalCircuit(ILogger logger, CircuitState state);

    [LoggerMessage(EventId = 22, Level = LogLevel.Error, Message = "ERCache's regional background flush failed (a bug): the values it had taken from the queue were not written, or not announced; the next flush runs as usual. ({Suppressed} more since the last such line.)")]
    public static partial void RegionalFlushFailed(ILogger logger, long suppressed, Exception exception);

    [LoggerMessage(EventId = 23, Level = LogLevel.Warning, Message = "ERCache was disposed before its last regional writes finished; they are dropped.")]
    public static partial void RegionalNotFlushed(ILogger logger);

    [LoggerMessage(EventId = 24, Level = LogLevel.Error, Message = "An ERCache configuration reload failed; the previous policies stay in force.")]
    public static partial void ReloadFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 25, Level = LogLevel.Error, Message = "Releasing a disposed ERCache failed.")]
    public static partial void ReleaseFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 26, Level = LogLevel.Information, Message = "ERCache warmed up for {Models} model(s).")]
    public static partial void WarmedUp(ILogger logger, int models);

    [LoggerMessage(EventId = 27, Level = LogLevel.Warning, Message = "Inference for model '{Model}' returned an invalid vector in row {Row} of a batch of {Users}: {Problem}; it was not cached and the request got failover or fallback. ({Suppressed} more of this kind since the last such line.)")]
    public static partial void InvalidVector(ILogger logger, string model, int row, int users, string problem, long suppressed);

    [LoggerMessage(EventId = 28, Level = LogLevel.Warning, Message = "Every inference slot of model '{Model}' ({Slots}) is held by a call that passed its hard timeout {HardTimeout} and has not returned (a delegate that blocks or ignores its token): every miss is shed until one returns.")]
    public static partial void AllSlotsAbandoned(ILogger logger, string model, int slots, TimeSpan hardTimeout);

    [LoggerMessage(EventId = 29, Level = LogLevel.Information, Message = "ERCache restored the {Tier} tier of model '{Model}' version '{Version}' from {Path}: {Loaded} entries, {Expired} too old, {Kept} kept because the tier held a newer vector or the user was removed meanwhile, {Full} left out because the tier was full of newer entries, {Removed} removed or superseded after the snapshot was written, in {ElapsedMs:F0} ms.")]
    public static partial void SnapshotLoaded(ILogger logger, TierKind tier, string model, string version, string path, long loaded, long expired, long kept, long full, long removed, double elapsedMs);

    [LoggerMessage(EventId = 30, Level = LogLevel.Warning, Message = "ERCache skipped the snapshot {Path} for the {Tier} tier of model '{Model}': {Reason}. Nothing of it was used; the tier starts empty.")]
    public static partial void SnapshotRejected(ILogger logger, string path, TierKind tier, string model, string reason);

    [LoggerMessage(EventId = 31, Level = LogLevel.Information, Message = "ERCache wrote the {Tier} tier of model '{Model}' version '{Version}' to {Path}: {Entries} entries, {Bytes} bytes, in {ElapsedMs:F0} ms.")]
    public static partial void SnapshotWritten(ILogger logger, TierKind tier, string model, string version, string path, long entries, long bytes, double elapsedMs);

    [LoggerMessage(EventId = 40, Level = LogLevel.Error, Message = "ERCache could not {Operation} the removal log {Path} of model '{Model}'; its snapshots are not restored, so that no removed or superseded entry comes back.")]
    public static partial void RemovalLogFailed(ILogger logger, string operation, string path, string model, Exception exception);

    [LoggerMessage(EventId = 32, Level = LogLevel.Warning, Message = "ERCache could not {Operation} the snapshot {Path}; the previous one (if any) is kept.")]
    public static partial void SnapshotFailed(ILogger logger, string operation, string path, Exception exception);

    [LoggerMessage(EventId = 34, Level = LogLevel.Warning, Message = "ERCache abandoned the snapshot {Path} after Snapshots:WriteTimeout {Timeout}; the previous one (if any) is kept, and later tiers are not written this time.")]
    public static partial void SnapshotWriteTimedOut(ILogger logger, string path, TimeSpan timeout);

    [LoggerMessage(EventId = 35, Level = LogLevel.Warning, Message = "ERCache lost its invalidation subscription: removals, pushes and clears of other hosts may be missed, so local vectors written before now are checked against the regional store until it is back.")]
    public static partial void InvalidationLost(ILogger logger);

    [LoggerMessage(EventId = 36, Level = LogLevel.Information, Message = "ERCache's invalidation subscription is back: {Entries} local entries written before it were dropped (what was missed cannot be known).")]
    public static partial void InvalidationRestored(ILogger logger, int entries);

    [LoggerMessage(EventId = 37, Level = LogLevel.Warning, Message = "ERCache could not announce a {Operation} to the other hosts; they keep their local copies until their TTL. ({Suppressed} more not sent since the last such line.)")]
    public static partial void InvalidationNotSent(ILogger logger, string operation, long suppressed, Exception exception);

    [LoggerMessage(EventId = 38, Level = LogLevel.Warning, Message = "ERCache ignored a reloaded {Setting} ({Before} -> {After}): it is read once, when the cache is built; restart the service to apply it. The models' settings of the same reload were applied.")]
    public static partial void ReloadSettingIgnored(ILogger logger, string setting, string before, string after);

    [LoggerMessage(EventId = 39, Level = LogLevel.Warning, Message = "ERCache model '{Model}' has Freshness settings but Inference:MaxConcurrency 1: drift sampling and refresh ahead never take the last free slot, so they will not run; set MaxConcurrency to 2 or more.")]
    public static partial void FreshnessWithoutSpareSlot(ILogger logger, string model);

    [LoggerMessage(EventId = 33, Level = LogLevel.Warning, Message = "ERCache stopped loading snapshots after Snapshots:LoadTimeout {Timeout}; what was loaded stays, the rest starts empty.")]
    public static partial void SnapshotLoadTimedOut(ILogger logger, TimeSpan timeout);

    [LoggerMessage(EventId = 41, Level = LogLevel.Warning, Message = "ERCache refused the regional value of model '{Model}' for user {UserId}: {Problem}. It was not served (a regional miss); values that never decode usually mean another deployment writes under the same Regional:KeyPrefix, or a damaged store. ({Suppressed} more of this kind since the last such line.)")]
    public static partial void RegionalValueRefused(ILogger logger, string model, long userId, string problem, long suppressed);

    [LoggerMessage(EventId = 42, Level = LogLevel.Warning, Message = "ERCache's regional write queue is full (Regional:QueueCapacity {Capacity}): a fresh vector was not shared, so other hosts infer it again. The store writes slower than the hosts infer, or the queue is too small. ({Suppressed} more dropped since the last such line.)")]
    public static partial void RegionalQueueFull(ILogger logger, int capacity, long suppressed);

    [LoggerMessage(EventId = 43, Level = LogLevel.Information, Message = "ERCache prefetched model '{Model}' version '{Version}' from the regional store for the {Users} users of its snapshots (beside invalidation the store, not a snapshot, holds the truth): {Direct} fresh, {FailoverOnly} for the failover tier only, {Missing} with no usable value (removed, replaced and expired, or refused), {Unavailable} not read (the store did not answer), in {ElapsedMs:F0} ms.")]
    public static partial void SnapshotPrefetched(ILogger logger, string model, string version, long users, long direct, long failoverOnly, long missing, long unavailable, double elapsedMs);

    [LoggerMessage(EventId = 44, Level = LogLevel.Warning, Message = "ERCache restored nothing of {Scope} from its snapshots: {Reason}. Beside an invalidation channel a snapshot's rows are never restored (removals made elsewhere while this host was down never reached it), so those tiers start empty.")]
    public static partial void SnapshotPrefetchSkipped(ILogger logger, string scope, string reason);
}
