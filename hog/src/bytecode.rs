//! HogVM v1 bytecode: the opcode numbers, and decoding a JSON program into instructions.
//!
//! Decoding checks every operand and turns relative jumps (counted in JSON elements, as PostHog
//! does) into instruction indexes, so the VM never reads past the end or lands inside an operand.

use std::rc::Rc;

use serde_json::Value as Json;

use crate::error::VmError;

/// Opcode numbers, as in PostHog's `Operation` enum.
#[allow(missing_docs)]
pub mod op {
    pub const GET_GLOBAL: u8 = 1;
    pub const CALL_GLOBAL: u8 = 2;
    pub const AND: u8 = 3;
    pub const OR: u8 = 4;
    pub const NOT: u8 = 5;
    pub const PLUS: u8 = 6;
    pub const MINUS: u8 = 7;
    pub const MULTIPLY: u8 = 8;
    pub const DIVIDE: u8 = 9;
    pub const MOD: u8 = 10;
    pub const EQ: u8 = 11;
    pub const NOT_EQ: u8 = 12;
    pub const GT: u8 = 13;
    pub const GT_EQ: u8 = 14;
    pub const LT: u8 = 15;
    pub const LT_EQ: u8 = 16;
    pub const LIKE: u8 = 17;
    pub const ILIKE: u8 = 18;
    pub const NOT_LIKE: u8 = 19;
    pub const NOT_ILIKE: u8 = 20;
    pub const IN: u8 = 21;
    pub const NOT_IN: u8 = 22;
    pub const REGEX: u8 = 23;
    pub const NOT_REGEX: u8 = 24;
    pub const IREGEX: u8 = 25;
    pub const NOT_IREGEX: u8 = 26;
    pub const IN_COHORT: u8 = 27;
    pub const NOT_IN_COHORT: u8 = 28;
    pub const TRUE: u8 = 29;
    pub const FALSE: u8 = 30;
    pub const NULL: u8 = 31;
    pub const STRING: u8 = 32;
    pub const INTEGER: u8 = 33;
    pub const FLOAT: u8 = 34;
    pub const POP: u8 = 35;
    pub const GET_LOCAL: u8 = 36;
    pub const SET_LOCAL: u8 = 37;
    pub const RETURN: u8 = 38;
    pub const JUMP: u8 = 39;
    pub const JUMP_IF_FALSE: u8 = 40;
    pub const DECLARE_FN: u8 = 41;
    pub const DICT: u8 = 42;
    pub const ARRAY: u8 = 43;
    pub const TUPLE: u8 = 44;
    pub const GET_PROPERTY: u8 = 45;
    pub const SET_PROPERTY: u8 = 46;
    pub const JUMP_IF_STACK_NOT_NULL: u8 = 47;
    pub const GET_PROPERTY_NULLISH: u8 = 48;
    pub const THROW: u8 = 49;
    pub const TRY: u8 = 50;
    pub const POP_TRY: u8 = 51;
    pub const CALLABLE: u8 = 52;
    pub const CLOSURE: u8 = 53;
    pub const CALL_LOCAL: u8 = 54;
    pub const GET_UPVALUE: u8 = 55;
    pub const SET_UPVALUE: u8 = 56;
    pub const CLOSE_UPVALUE: u8 = 57;
}

/// Comparison kinds shared by several opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `==`
    Eq,
    /// `!=`
    NotEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
}

/// One decoded instruction. Jump targets are instruction indexes (`len` means "end of chunk").
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Instr {
    GetGlobal(usize),
    /// A call by name: the name, the argument count and the native standard library function
    /// of that name (looked up once here rather than on every call).
    CallGlobal(Rc<str>, usize, Option<&'static crate::stl::Spec>),
    And(usize),
    Or(usize),
    Not,
    Plus,
    Minus,
    Mul,
    Div,
    Mod,
    Compare(Cmp),
    Like {
        ci: bool,
        negate: bool,
    },
    In {
        negate: bool,
    },
    Regex {
        ci: bool,
        negate: bool,
    },
    InCohort,
    True,
    False,
    Null,
    Str(crate::value::Str),
    Int(i64),
    Float(f64),
    Pop,
    GetLocal(usize),
    SetLocal(usize),
    Return,
    Jump(usize),
    JumpIfFalse(usize),
    JumpIfStackNotNull(usize),
    Dict(usize),
    Array(usize),
    Tuple(usize),
    GetProperty {
        nullish: bool,
    },
    SetProperty,
    Throw,
    Try(usize),
    PopTry,
    /// A function body starts at the next instruction and ends before `end`.
    Callable {
        name: crate::value::Str,
        argc: usize,
        upvalues: usize,
        end: usize,
    },
    Closure(Vec<(bool, usize)>),
    CallLocal(usize),
    GetUpvalue(usize),
    SetUpvalue(usize),
    CloseUpvalue,
}

/// A decoded chunk of bytecode.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    /// The instructions.
    pub code: Vec<Instr>,
}

fn bad(msg: impl Into<String>) -> VmError {
    VmError::InvalidBytecode(msg.into())
}

/// Decodes a whole program (`["_H", 1, ...]`; the legacy `["_h", ...]` header is refused).
pub fn decode_program(bytecode: &Json) -> Result<Chunk, VmError> {
    let arr = bytecode
        .as_array()
        .ok_or_else(|| bad("bytecode must be a JSON array"))?;
    match (arr.first().and_then(Json::as_str), arr.get(1)) {
        (Some("_H"), Some(v)) if v.as_i64() == Some(1) => decode_ops(&arr[2..]),
        (Some("_H"), _) => Err(bad(
            "unsupported bytecode version, expected [\"_H\", 1, ...]",
        )),
        (Some("_h"), _) => Err(bad("version 0 bytecode ('_h') is not supported")),
        _ => Err(bad("Invalid HogQL bytecode, must start with '_H'")),
    }
}

/// Decodes a headerless list of ops.
pub fn decode_ops(elems: &[Json]) -> Result<Chunk, VmError> {
    // First pass: decode, keeping jump offsets as element positions.
    let mut code = Vec::new();
    let mut starts = Vec::new(); // element index of each instruction
    let mut jumps: Vec<(usize, i64)> = Vec::new(); // (instr, target element)
    let mut i = 0usize;
    let n = elems.len();
    let operand = |i: usize| -> Result<&Json, VmError> {
        elems
            .get(i)
            .ok_or_else(|| bad("Unexpected end of bytecode"))
    };
    let uint = |i: usize| -> Result<usize, VmError> {
        let v = operand(i)?;
        v.as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .filter(|x| *x <= 1 << 24)
            .ok_or_else(|| {
                bad(format!(
                    "expected a small non-negative integer operand, got {v}"
                ))
            })
    };
    let int = |i: usize| -> Result<i64, VmError> {
        let v = operand(i)?;
        v.as_i64()
            .ok_or_else(|| bad(format!("expected an integer operand, got {v}")))
    };
    let string = |i: usize| -> Result<&str, VmError> {
        let v = operand(i)?;
        v.as_str()
            .ok_or_else(|| bad(format!("expected a string operand, got {v}")))
    };
    while i < n {
        let at = i;
        let code_num = elems[i]
            .as_u64()
            .ok_or_else(|| bad(format!("expected an opcode at {at}, got {}", elems[i])))?;
        let code_num =
            u8::try_from(code_num).map_err(|_| bad(format!("unknown opcode {code_num}")))?;
        i += 1;
        let instr = match code_num {
            op::GET_GLOBAL => {
                i += 1;
                Instr::GetGlobal(uint(i - 1)?)
            }
            op::CALL_GLOBAL => {
                i += 2;
                let name = string(i - 2)?;
                let spec = crate::stl::spec(name);
                Instr::CallGlobal(Rc::from(name), uint(i - 1)?, spec)
            }
            op::AND => {
                i += 1;
                Instr::And(uint(i - 1)?)
            }
            op::OR => {
                i += 1;
                Instr::Or(uint(i - 1)?)
            }
            op::NOT => Instr::Not,
            op::PLUS => Instr::Plus,
            op::MINUS => Instr::Minus,
            op::MULTIPLY => Instr::Mul,
            op::DIVIDE => Instr::Div,
            op::MOD => Instr::Mod,
            op::EQ => Instr::Compare(Cmp::Eq),
            op::NOT_EQ => Instr::Compare(Cmp::NotEq),
            op::GT => Instr::Compare(Cmp::Gt),
            op::GT_EQ => Instr::Compare(Cmp::GtEq),
            op::LT => Instr::Compare(Cmp::Lt),
            op::LT_EQ => Instr::Compare(Cmp::LtEq),
            op::LIKE => Instr::Like {
                ci: false,
                negate: false,
            },
            op::ILIKE => Instr::Like {
                ci: true,
                negate: false,
            },
            op::NOT_LIKE => Instr::Like {
                ci: false,
                negate: true,
            },
            op::NOT_ILIKE => Instr::Like {
                ci: true,
                negate: true,
            },
            op::IN => Instr::In { negate: false },
            op::NOT_IN => Instr::In { negate: true },
            op::REGEX => Instr::Regex {
                ci: false,
                negate: false,
            },
            op::NOT_REGEX => Instr::Regex {
                ci: false,
                negate: true,
            },
            op::IREGEX => Instr::Regex {
                ci: true,
                negate: false,
            },
            op::NOT_IREGEX => Instr::Regex {
                ci: true,
                negate: true,
            },
            op::IN_COHORT | op::NOT_IN_COHORT => Instr::InCohort,
            op::TRUE => Instr::True,
            op::FALSE => Instr::False,
            op::NULL => Instr::Null,
            op::STRING => {
                i += 1;
                Instr::Str(string(i - 1)?.into())
            }
            op::INTEGER => {
                i += 1;
                let v = operand(i - 1)?;
                match v.as_i64() {
                    Some(x) => Instr::Int(x),
                    None => Instr::Float(
                        v.as_f64()
                            .ok_or_else(|| bad(format!("expected an integer, got {v}")))?,
                    ),
                }
            }
            op::FLOAT => {
                i += 1;
                let v = operand(i - 1)?;
                Instr::Float(
                    v.as_f64()
                        .ok_or_else(|| bad(format!("expected a number, got {v}")))?,
                )
            }
            op::POP => Instr::Pop,
            op::GET_LOCAL => {
                i += 1;
                Instr::GetLocal(uint(i - 1)?)
            }
            op::SET_LOCAL => {
                i += 1;
                Instr::SetLocal(uint(i - 1)?)
            }
            op::RETURN => Instr::Return,
            op::JUMP | op::JUMP_IF_FALSE | op::JUMP_IF_STACK_NOT_NULL | op::TRY => {
                i += 1;
                let off = int(i - 1)?;
                // TRY counts from its operand; jumps count from the element after it.
                let base = if code_num == op::TRY {
                    i as i64 - 1
                } else {
                    i as i64
                };
                jumps.push((code.len(), base.saturating_add(off)));
                match code_num {
                    op::JUMP => Instr::Jump(0),
                    op::JUMP_IF_FALSE => Instr::JumpIfFalse(0),
                    op::TRY => Instr::Try(0),
                    _ => Instr::JumpIfStackNotNull(0),
                }
            }
            op::DECLARE_FN => return Err(bad("DECLARE_FN is deprecated and not supported")),
            op::DICT => {
                i += 1;
                Instr::Dict(uint(i - 1)?)
            }
            op::ARRAY => {
                i += 1;
                Instr::Array(uint(i - 1)?)
            }
            op::TUPLE => {
                i += 1;
                Instr::Tuple(uint(i - 1)?)
            }
            op::GET_PROPERTY => Instr::GetProperty { nullish: false },
            op::GET_PROPERTY_NULLISH => Instr::GetProperty { nullish: true },
            op::SET_PROPERTY => Instr::SetProperty,
            op::THROW => Instr::Throw,
            op::POP_TRY => Instr::PopTry,
            op::CALLABLE => {
                i += 4;
                let name = string(i - 4)?;
                let argc = uint(i - 3)?;
                let upvalues = uint(i - 2)?;
                let body = uint(i - 1)?;
                jumps.push((code.len(), (i + body) as i64));
                Instr::Callable {
                    name: name.into(),
                    argc,
                    upvalues,
                    end: 0,
                }
            }
            op::CLOSURE => {
                i += 1;
                let count = uint(i - 1)?;
                let mut ups = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    let is_local = match operand(i)? {
                        Json::Bool(b) => *b,
                        Json::Number(x) => x.as_f64().is_some_and(|f| f != 0.0),
                        other => return Err(bad(format!("expected isLocal, got {other}"))),
                    };
                    let index = uint(i + 1)?;
                    i += 2;
                    ups.push((is_local, index));
                }
                Instr::Closure(ups)
            }
            op::CALL_LOCAL => {
                i += 1;
                Instr::CallLocal(uint(i - 1)?)
            }
            op::GET_UPVALUE => {
                i += 1;
                Instr::GetUpvalue(uint(i - 1)?)
            }
            op::SET_UPVALUE => {
                i += 1;
                Instr::SetUpvalue(uint(i - 1)?)
            }
            op::CLOSE_UPVALUE => Instr::CloseUpvalue,
            other => return Err(bad(format!("unknown opcode {other}"))),
        };
        starts.push(at);
        code.push(instr);
    }
    // Second pass: element positions → instruction indexes.
    for (idx, target) in jumps {
        let t = usize::try_from(target).map_err(|_| bad("jump before the start of the chunk"))?;
        let to = if t == n {
            code.len()
        } else {
            starts
                .binary_search(&t)
                .map_err(|_| bad(format!("jump into the middle of an instruction ({t})")))?
        };
        match &mut code[idx] {
            Instr::Jump(x)
            | Instr::JumpIfFalse(x)
            | Instr::JumpIfStackNotNull(x)
            | Instr::Try(x)
            | Instr::Callable { end: x, .. } => *x = to,
            _ => {}
        }
    }
    Ok(Chunk { code })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_jumps_to_instruction_indexes() {
        let c = decode_program(&json!(["_H", 1, 29, 40, 2, 33, 1, 31])).unwrap();
        assert!(matches!(c.code[1], Instr::JumpIfFalse(3)));
    }

    #[test]
    fn refuses_broken_bytecode() {
        assert!(decode_program(&json!(["_H", 1, 33])).is_err());
        assert!(decode_program(&json!(["_H", 1, 39, 1, 33, 1])).is_err());
        assert!(decode_program(&json!(["_H", 1, 999])).is_err());
        assert!(decode_program(&json!({"a": 1})).is_err());
    }
}
