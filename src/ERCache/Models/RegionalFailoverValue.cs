namespace ERCache.Models;

/// <summary>A regional value too old for a regional hit, kept by the lookup for the failure path: decoded once, with its
/// wall-clock write time (Unix milliseconds).</summary>
internal readonly record struct RegionalFailoverValue(float[] Vector, long WrittenAtUtc);
