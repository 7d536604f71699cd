namespace ERCache.Regional;

/// <summary>A fresh, validated vector waiting for the regional store; encoded when its group is written.</summary>
/// <param name="Field">The model and version.</param>
/// <param name="Format">The model's regional format.</param>
/// <param name="Fingerprint">The model version's fingerprint for the header.</param>
/// <param name="UserId">The user.</param>
/// <param name="WrittenAtUnixMs">When inference produced it (wall clock, shared by the hosts).</param>
/// <param name="Vector">The vector (never changed after it is queued).</param>
/// <param name="TimeToLive">How long the store should keep it: the model's failover TTL.</param>
/// <param name="Announce">A push: once written, the other hosts are told to drop their local copies.</param>
internal readonly record struct PendingWrite(
    string Field, StorageFormat Format, ulong Fingerprint, long UserId, long WrittenAtUnixMs, float[] Vector, TimeSpan TimeToLive, bool Announce = false);
