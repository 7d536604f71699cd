namespace ERCache.Tiers.Snapshots;

/// <summary>What a tier snapshot must match to be loaded: the model, its version, the vectors' length and storage
/// format, and the tier it was taken from.</summary>
internal readonly record struct SnapshotIdentity(string Model, string Version, int Dimensions, StorageFormat Format, TierKind Tier)
{
    public override string ToString() => $"model '{Model}' version '{Version}', {Dimensions} dimensions, {Format}, {Tier} tier";
}
