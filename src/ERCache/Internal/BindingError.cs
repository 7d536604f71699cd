namespace ERCache.Internal;

/// <summary>A setting that did not bind: its configuration path and the message that names it.</summary>
internal readonly record struct BindingError(string Path, string Message);
