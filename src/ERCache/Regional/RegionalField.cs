namespace ERCache.Regional;

/// <summary>One model's value for a user in the regional store.</summary>
/// <param name="Field">The field: the model and its version.</param>
/// <param name="Value">The encoded value (header and row).</param>
public readonly record struct RegionalField(string Field, byte[] Value);
