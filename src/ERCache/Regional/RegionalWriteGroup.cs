namespace ERCache.Regional;

/// <summary>One user's fresh values, written to the regional store as one write (the paper's update grouping: a
/// request that runs several user towers for one user sends them together).</summary>
/// <param name="UserId">The user.</param>
/// <param name="Fields">The values, one per model; field names are unique within a group.</param>
/// <param name="TimeToLive">How long the store keeps the user's values: the longest failover TTL among the fields,
/// so the store's memory is bounded.</param>
public sealed record RegionalWriteGroup(long UserId, IReadOnlyList<RegionalField> Fields, TimeSpan TimeToLive);
