namespace ERCache.Regional;

/// <summary>One model's value for a user in the regional store.</summary>
/// <param name="Field">The field: the model and its version.</param>
/// <param name="Value">The encoded value (header and row).</param>
/// <param name="WrittenAtUnixMs">When the value was computed (wall clock, Unix milliseconds): the store keeps it only
/// if it holds no newer value or removal of the field (newer wins).</param>
public readonly record struct RegionalField(string Field, byte[] Value, long WrittenAtUnixMs);
